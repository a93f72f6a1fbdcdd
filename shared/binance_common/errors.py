"""One exception tree for everything that can go wrong talking to Binance, mapped at the REST boundary."""

from __future__ import annotations

import math
from collections.abc import Mapping

MAX_RETRY_AFTER_S = 3 * 24 * 3600.0  # Binance's longest IP ban is 3 days: no wait is ever longer


def retry_after_s(headers: Mapping[str, str], default_s: float) -> float:
    """``Retry-After`` in seconds (Binance sends integer seconds), clamped to [0, 3 days]; ``default_s`` when
    absent or unreadable (``inf``, ``nan``, dates)."""
    v = headers.get("retry-after") or headers.get("Retry-After")
    try:
        s = float(v) if v is not None else default_s
    except ValueError:
        return default_s
    if not math.isfinite(s):
        return default_s
    return min(MAX_RETRY_AFTER_S, max(0.0, s))


class BinanceError(Exception):
    """Base of every Binance-related failure. ``str(e)`` is a message an agent can act on."""

    retryable: bool = False

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class BinanceAPIError(BinanceError):
    """Binance answered with an error body ``{"code": <int>, "msg": <str>}``."""


class InvalidSymbolError(BinanceAPIError):
    """-1121: the symbol does not exist on this venue."""


class InvalidIntervalError(BinanceAPIError):
    """-1120: the kline interval is not valid (intervals are case-sensitive)."""


class InvalidParameterError(BinanceAPIError):
    """-1100..-1106 and other 4xx parameter errors."""


AUTH_CODES = (-1021, -1022, -2014, -2015, -2008)
"""Binance's codes for a request whose credentials it refused: -1021 timestamp outside recvWindow, -1022
bad signature, -2014 API-key format invalid, -2015 invalid key, IP or permissions, -2008 invalid key id."""


class AuthError(BinanceAPIError):
    """The credentials were refused (one of :data:`AUTH_CODES`, or HTTP 401). The signed client rewrites
    the message with the fix (which key type, which permission)."""


class GeoBlockedError(BinanceError):
    """HTTP 451: Binance refuses this location. Not retryable."""


class RateLimitedError(BinanceError):
    """HTTP 429 (or the local governor holding back): wait ``retry_after_s`` seconds."""

    retryable = True

    def __init__(self, message: str, *, retry_after_s: float, until_ms: int, status: int | None = 429) -> None:
        super().__init__(message, status=status, code=-1003)
        self.retry_after_s = retry_after_s
        self.until_ms = until_ms


class IPBannedError(RateLimitedError):
    """HTTP 418: the IP is banned until ``until_ms``; every process stops calling until then."""


class ServerError(BinanceError):
    """HTTP 5xx: the outcome is unknown (not known to have failed)."""

    retryable = True


class TransportError(BinanceError):
    """Timeout, connection failure, proxy failure: no answer from Binance."""

    retryable = True
