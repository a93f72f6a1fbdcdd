FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY daemon ./daemon
COPY mcp_server ./mcp_server
RUN pip install --no-cache-dir . && useradd --system --uid 10001 app
USER app
ENV PYTHONUNBUFFERED=1
EXPOSE 8765
CMD ["binance-mcp", "http", "--host", "0.0.0.0", "--port", "8765"]
