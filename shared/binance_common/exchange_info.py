"""The shared exchangeInfo cache's layout (``cache:exchange_info``, written by whichever process fetched it).

exchangeInfo is large and weighs 20; front ends and the daemon share one compact copy in Redis with a TTL
(``exchange_info_ttl_s``) and a short NX lock so one process refreshes it.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["CACHE_NAME", "LOCK_NAME", "compact_exchange_info", "symbol_names"]

CACHE_NAME = "exchange_info"
LOCK_NAME = "exchange_info:lock"


def compact_exchange_info(raw: dict[str, Any], fetched_at_ms: int) -> dict[str, Any]:
    """Drop what no tool needs (``permissionSets`` flattens into ``permissions``), keep every other field."""
    symbols = []
    for s in raw.get("symbols") or []:
        if not isinstance(s, dict) or "symbol" not in s:
            continue
        c = {k: v for k, v in s.items() if k != "permissionSets"}
        perms: list[str] = list(s.get("permissions") or [])
        for group in s.get("permissionSets") or []:
            perms.extend(group)
        c["permissions"] = sorted(set(perms))
        symbols.append(c)
    return {
        "fetched_at_ms": fetched_at_ms,
        "timezone": raw.get("timezone", "UTC"),
        "serverTime": raw.get("serverTime"),
        "rateLimits": raw.get("rateLimits") or [],
        "exchangeFilters": raw.get("exchangeFilters") or [],
        "symbols": symbols,
    }


def symbol_names(blob: bytes | str | None) -> set[str] | None:
    """The symbols a cached compact copy lists, or None when there is no readable copy."""
    if blob is None:
        return None
    try:
        data = orjson.loads(blob)
        return {str(s["symbol"]) for s in data.get("symbols") or []}
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None


def symbol_assets(data: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """symbol -> (base asset, quote asset) of an exchangeInfo answer or its compact copy."""
    return {str(s["symbol"]): (str(s.get("baseAsset", "")), str(s.get("quoteAsset", "")))
            for s in data.get("symbols") or [] if isinstance(s, dict) and "symbol" in s}
