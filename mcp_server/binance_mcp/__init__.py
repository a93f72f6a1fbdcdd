"""binance-mcp: stateless MCP front ends (stdio, Streamable HTTP) over Binance REST and the Redis feed."""

__version__ = "0.1.0"
