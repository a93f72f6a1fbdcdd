"""Async Binance REST client on httpx: weights, a pluggable governor, clock offset, typed errors.

Responses are decoded with ``parse_float=Decimal`` so no number is ever a float. Every failure becomes a
:class:`~binance_common.errors.BinanceError` subclass (see :func:`map_error`). The governor seam lets the
shared Redis rate-limit budget hold a request back *before* Binance would refuse it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

import httpx

from .errors import (
    AUTH_CODES,
    AuthError,
    BinanceAPIError,
    BinanceError,
    GeoBlockedError,
    InvalidIntervalError,
    InvalidParameterError,
    InvalidSymbolError,
    IPBannedError,
    RateLimitedError,
    ServerError,
    TransportError,
    retry_after_s,
)
from .settings import Settings
from .weights import request_weight

log = logging.getLogger(__name__)

GEO_HINT = (
    "Binance refuses requests from this location (HTTP 451). Configure another endpoint with "
    "BINANCE_MCP_REST_BASE_URL (e.g. https://data-api.binance.vision for public market data, or a "
    "regional venue) or route through a proxy with BINANCE_MCP_PROXY."
)


class Governor(Protocol):
    """Shared REST budget. ``acquire`` raises RateLimitedError when the call must not be made now."""

    async def acquire(self, weight: int, share: float = 1.0) -> None: ...

    async def observe(self, status: int, headers: Mapping[str, str], weight: int) -> None: ...


@runtime_checkable
class ClockStore(Protocol):
    """Optional governor capability: remember the server clock offset for every process (signed requests)."""

    async def record_clock_offset(self, offset_ms: int) -> None: ...


class NullGovernor:
    """No shared budget: only Binance's own answers limit us."""

    async def acquire(self, weight: int, share: float = 1.0) -> None:
        return None

    async def observe(self, status: int, headers: Mapping[str, str], weight: int) -> None:
        return None


def decode_json(content: bytes) -> Any:
    """Decode a Binance body keeping every number exact (floats become Decimal)."""
    return json.loads(content, parse_float=Decimal)


def map_error(status: int, headers: Mapping[str, str], content: bytes, path: str) -> BinanceError:
    """Turn a non-2xx Binance answer into a typed error with an actionable message."""
    code: int | None = None
    msg = content[:300].decode("utf-8", "replace")
    try:
        body = json.loads(content)
        if isinstance(body, dict):
            code = body.get("code") if isinstance(body.get("code"), int) else None
            msg = str(body.get("msg", msg))
    except ValueError:
        pass
    now_ms = int(time.time() * 1000)
    if status == 451:
        return GeoBlockedError(f"{GEO_HINT} Binance said: {msg}", status=status, code=code)
    if status == 418:
        ra = retry_after_s(headers, 120.0)
        return IPBannedError(
            f"Binance has banned this IP for {ra:.0f} s (HTTP 418) after requests continued past a 429; "
            f"no request will be sent until then. Binance said: {msg}",
            retry_after_s=ra, until_ms=now_ms + int(ra * 1000), status=status,
        )
    if status == 429:
        ra = retry_after_s(headers, 60.0)
        return RateLimitedError(
            f"Binance rate limit reached (HTTP 429); retry after {ra:.0f} s. Binance said: {msg}",
            retry_after_s=ra, until_ms=now_ms + int(ra * 1000), status=status,
        )
    if code in AUTH_CODES or status == 401:
        return AuthError(f"Binance refused the request's credentials (HTTP {status}, code {code}): {msg}",
                         status=status, code=code)
    if status == 403:
        return BinanceAPIError(
            f"Binance's web application firewall refused the request (HTTP 403) for {path}; do not repeat it "
            f"unchanged. Binance said: {msg}",
            status=status, code=code,
        )
    if status >= 500:
        return ServerError(
            f"Binance returned HTTP {status} for {path}: the outcome is unknown (not known to have "
            f"failed); retry later. {msg}",
            status=status, code=code,
        )
    if code == -1121:
        return InvalidSymbolError(f"Invalid symbol (Binance -1121): {msg}", status=status, code=code)
    if code == -1120:
        return InvalidIntervalError(
            f"Invalid interval (Binance -1120): {msg}. Valid: 1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h "
            "1d 3d 1w 1M (case-sensitive)", status=status, code=code,
        )
    if code is not None and (-1199 <= code <= -1100 or code in (-1220, -1013)):
        return InvalidParameterError(f"Bad parameter (Binance {code}): {msg}", status=status, code=code)
    return BinanceAPIError(f"Binance error {code} (HTTP {status}): {msg}", status=status, code=code)


class BinanceRest:
    """One httpx.AsyncClient per process. Use as an async context manager or call :meth:`aclose`."""

    def __init__(
        self,
        settings: Settings,
        *,
        governor: Governor | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        base_url: str | None = None,
        weigh: Callable[[str, Mapping[str, Any]], int] = request_weight,
    ) -> None:
        self.settings = settings
        self.governor: Governor = governor or NullGovernor()
        self.base_url = base_url or settings.rest_base_url
        self.weigh = weigh
        self.clock_offset_ms: int = 0  # server time - local time, from /time and Date headers
        self.last_used_weight: int | None = None
        self.last_round_trip_ms: float | None = None
        timeout = httpx.Timeout(settings.rest_timeout_s, connect=min(5.0, settings.rest_timeout_s))
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            proxy=settings.proxy if transport is None else None,
            headers={"User-Agent": "binance-mcp/0.1", "Accept": "application/json"},
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        )

    async def __aenter__(self) -> BinanceRest:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(self, path: str, params: Mapping[str, Any] | None = None, *, budget_share: float = 1.0) -> Any:
        """GET ``path`` with ``params``; returns the decoded JSON (Decimals for fractional numbers).
        ``budget_share``: the fraction of the shared weight budget this call may draw on (see the governor)."""
        return (await self.get_with_headers(path, params, budget_share=budget_share))[0]

    async def get_with_headers(
        self, path: str, params: Mapping[str, Any] | None = None, *, budget_share: float = 1.0
    ) -> tuple[Any, httpx.Headers]:
        clean = _encode_params(params or {})
        return await self.send("GET", path, clean, self.weigh(path, clean), budget_share=budget_share)

    async def send(
        self, method: str, path: str, query: Mapping[str, str] | str, weight: int, *,
        headers: Mapping[str, str] | None = None, budget_share: float = 1.0, acquired: bool = False,
    ) -> tuple[Any, httpx.Headers]:
        """One request through the governor (``acquired``: the caller already reserved ``weight``): ``query`` as
        params, or a string sent byte for byte (a signed query must reach Binance exactly as it was signed).
        Returns the decoded body and the headers."""
        if not acquired:
            await self.governor.acquire(weight, share=budget_share)
        url, params = (f"{path}?{query}", None) if isinstance(query, str) else (path, query)
        try:
            resp = await self._client.request(method, url, params=params, headers=headers)
        except httpx.TimeoutException as e:
            raise TransportError(
                f"Binance did not answer {path} within {self.settings.rest_timeout_s:g} s (timeout); "
                "the outcome is unknown, retry later."
            ) from e
        except httpx.TransportError as e:  # connect, proxy, network, protocol failures
            raise TransportError(
                f"Could not reach Binance at {self.base_url} ({type(e).__name__}: {e}). Check the network, "
                "BINANCE_MCP_REST_BASE_URL and BINANCE_MCP_PROXY."
            ) from e
        used = resp.headers.get("x-mbx-used-weight-1m")
        if used and used.isdigit():
            self.last_used_weight = int(used)
        await self.governor.observe(resp.status_code, resp.headers, weight)
        if resp.status_code >= 400:
            raise map_error(resp.status_code, resp.headers, resp.content, path)
        try:
            return decode_json(resp.content), resp.headers
        except ValueError as e:
            raise ServerError(f"Binance sent an unreadable body for {path}: {e}", status=resp.status_code) from e

    async def server_time_ms(self) -> int:
        """GET /api/v3/time and update :attr:`clock_offset_ms` (midpoint of the round trip)."""
        t0 = time.time() * 1000
        data = await self.get("/api/v3/time")
        t1 = time.time() * 1000
        server = int(data["serverTime"])
        self.clock_offset_ms = int(server - (t0 + t1) / 2)
        self.last_round_trip_ms = t1 - t0
        if isinstance(self.governor, ClockStore):
            await self.governor.record_clock_offset(self.clock_offset_ms)
        return server


def _encode_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Binance wants ``symbols=["A","B"]`` (compact JSON), booleans lowercase, Decimals verbatim."""
    out: dict[str, str] = {}
    for k, v in params.items():
        if v is None:
            continue
        if isinstance(v, list | tuple):
            out[k] = "[" + ",".join(f'"{x}"' for x in v) + "]"
        elif isinstance(v, bool):
            out[k] = "true" if v else "false"
        else:
            out[k] = str(v)
    return out
