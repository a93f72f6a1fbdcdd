"""Replay of a real recording (zstd JSONL): recorded REST bodies and WebSocket frames, byte-exact."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class ReplayData:
    exchange_info: dict[str, Any] | None = None
    depth: dict[str, dict[str, Any]] = field(default_factory=dict)
    frames: list[tuple[float, str, bytes]] = field(default_factory=list)  # (ts, stream, raw data payload)
    symbols: set[str] = field(default_factory=set)

    @property
    def streams(self) -> set[str]:
        return {s for _, s, _ in self.frames}


def load(path: str | Path) -> ReplayData:
    import zstandard

    raw = Path(path).read_bytes()
    text = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read().decode()
    data = ReplayData()
    for line in text.splitlines():
        if not line.strip():
            continue
        o = json.loads(line)
        t = o.get("t")
        if t == "http":
            url = urlsplit(o["url"])
            body = json.loads(o["data"])
            if url.path.endswith("/exchangeInfo"):
                data.exchange_info = body
            elif url.path.endswith("/depth"):
                sym = parse_qs(url.query)["symbol"][0]
                data.depth[sym] = body
                data.symbols.add(sym)
        elif t == "recv":
            frame = o["data"].encode() if isinstance(o["data"], str) else json.dumps(o["data"]).encode()
            stream, payload = split_combined(frame)
            data.frames.append((float(o["ts"]), stream, payload))
    return data


def split_combined(frame: bytes) -> tuple[str, bytes]:
    """``{"stream":"x","data":<payload>}`` -> ("x", payload bytes verbatim)."""
    head = b'{"stream":"'
    if not frame.startswith(head):
        obj = json.loads(frame)
        return obj["stream"], json.dumps(obj["data"], separators=(",", ":")).encode()
    end = frame.index(b'"', len(head))
    stream = frame[len(head):end].decode()
    start = frame.index(b'"data":', end) + len(b'"data":')
    return stream, frame[start:-1]
