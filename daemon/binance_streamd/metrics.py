"""Optional Prometheus text endpoint (off unless BINANCE_MCP_METRICS_PORT is set); loopback only."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .service import StreamDaemon


def render(daemon: StreamDaemon) -> str:
    s = daemon.stats()
    w = s.get("writer", {})
    lines = [
        "# TYPE binance_streamd_messages_total counter",
        *[f'binance_streamd_messages_total{{stream="{n}"}} {v["msgs"]}' for n, v in s["streams"].items()],
        "# TYPE binance_streamd_gaps_found_total counter",
        *[f'binance_streamd_gaps_found_total{{stream="{n}"}} {v["gaps_found"]}' for n, v in s["streams"].items()],
        "# TYPE binance_streamd_gaps_filled_total counter",
        *[f'binance_streamd_gaps_filled_total{{stream="{n}"}} {v["gaps_filled"]}' for n, v in s["streams"].items()],
        "# TYPE binance_streamd_connections gauge",
        f"binance_streamd_connections {sum(1 for c in s['connections'] if c['up'])}",
        "# TYPE binance_streamd_written_total counter",
        f"binance_streamd_written_total {w.get('written', 0)}",
        "# TYPE binance_streamd_dropped_total counter",
        f"binance_streamd_dropped_total {w.get('dropped', 0)}",
        "# TYPE binance_streamd_buffered gauge",
        f"binance_streamd_buffered {w.get('buffered', 0)}",
        "# TYPE binance_streamd_malformed_total counter",
        f"binance_streamd_malformed_total {s['malformed']}",
    ]
    return "\n".join(lines) + "\n"


async def serve_metrics(daemon: StreamDaemon, port: int, host: str = "127.0.0.1") -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            body = render(daemon).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n" % len(body) + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)
