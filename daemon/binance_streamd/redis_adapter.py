"""The one redis-py internal the daemon uses, in one place (pinned by ``tests/integration/test_adapters.py``).

``Connection._writer`` (an ``asyncio.StreamWriter``): the writer sends a full batch synchronously from inside
the socket read callback, without waiting for its own task's turn, so Redis is never idle while one large
read is being processed (docs/benchmarks.md). redis-py has no public synchronous send; without the attribute
the writer simply waits for its task (slower under bursts, never wrong).
"""

from __future__ import annotations

from typing import Any

__all__ = ["stream_writer"]


def stream_writer(conn: Any) -> Any | None:
    """The connected ``asyncio.StreamWriter`` of a redis-py asyncio connection, or None."""
    return getattr(conn, "_writer", None)
