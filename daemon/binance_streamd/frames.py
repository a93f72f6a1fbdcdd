"""Pure frame handling: split combined-stream frames without re-serialising, recognise control replies."""

from __future__ import annotations

from typing import Any

import orjson

_HEAD = b'{"stream":"'
_DATA = b'","data":'


def split_combined(frame: bytes) -> tuple[str, bytes] | None:
    """``{"stream":"<name>","data":<payload>}`` -> (name, payload bytes verbatim); None if not that shape.

    Binance always writes these two keys in this order; anything else falls back to a full parse.
    """
    if frame.startswith(_HEAD):
        end = frame.find(_DATA, len(_HEAD))
        if end > 0 and frame.endswith(b"}"):
            try:
                return frame[len(_HEAD):end].decode(), frame[end + len(_DATA):-1]
            except UnicodeDecodeError:
                return None
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("stream"), str) and "data" in obj:
        return obj["stream"], orjson.dumps(obj["data"])
    return None


def control_reply(obj: Any) -> tuple[Any, str | None] | None:
    """(id, error message or None) when ``obj`` answers a SUBSCRIBE/UNSUBSCRIBE/LIST request, else None.

    Accepts the documented ``{"result":null,"id":1}`` and both error shapes Binance has used:
    ``{"code":2,"msg":"...","id":1}`` and ``{"error":{"code":2,"msg":"..."},"id":1}``.
    """
    if not isinstance(obj, dict) or "id" not in obj:
        return None
    if "result" in obj:
        return obj["id"], None
    err = obj.get("error")
    if isinstance(err, dict):
        return obj["id"], f"Binance error {err.get('code')}: {err.get('msg')}"
    if "code" in obj:
        return obj["id"], f"Binance error {obj.get('code')}: {obj.get('msg')}"
    return None


def is_server_shutdown(stream: str | None, obj: Any) -> bool:
    return stream == "!serverShutdown" or (isinstance(obj, dict) and obj.get("e") == "serverShutdown")
