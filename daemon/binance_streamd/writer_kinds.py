"""What the writer queues: one message, and its kind."""

from __future__ import annotations

Message = tuple[str, bytes, int, int]  # stream, raw payload (or gap JSON), receive ms, kind
LIVE, BACKFILL, GAP, LATEST = 0, 1, 2, 3  # LATEST: only the latest value (one element of an all-market array)
