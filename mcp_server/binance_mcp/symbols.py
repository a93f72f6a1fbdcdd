"""The symbol directory: exchangeInfo fetched once, shared by every replica through Redis, searched locally.

exchangeInfo is large (megabytes for ~3000 symbols) and weighs 20, so it is fetched at most once per
``settings.exchange_info_ttl_s`` by the whole replica pool: the first replica that needs it takes a short
Redis lock, fetches, and stores a compact copy (``cache:exchange_info``, with that TTL); the others wait for
the copy. Each replica keeps the parsed copy in memory until the Redis copy expires, so a lookup costs no
Redis round trip in between. When a refresh fails (rate limit, network) the last good copy is served with
its age rather than failing.

Pure helpers (:func:`compact_exchange_info`, :func:`suggest`, :func:`summarise_filters`, :func:`search`) take
plain data and are tested without I/O.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from binance_common.errors import BinanceError, InvalidSymbolError
from binance_common.exchange_info import CACHE_NAME, LOCK_NAME, compact_exchange_info
from binance_common.keys import Keys
from binance_common.rest import BinanceRest
from binance_common.settings import Settings
from binance_common.streams import normalize_symbol
from binance_common.timeutil import now_ms

LOCK_TTL_MS = 20_000
STALE_MAX_MS = 24 * 3600 * 1000
"""A last good copy older than this is not served when a refresh fails."""


class UnknownSymbolError(InvalidSymbolError):
    """A well-formed symbol that the venue does not list; the message suggests real ones."""


@dataclass
class ExchangeSnapshot:
    """A compact exchangeInfo: top-level fields plus one dict per symbol (Binance's field names)."""

    fetched_at_ms: int
    timezone: str
    server_time_ms: int | None
    rate_limits: list[dict[str, Any]]
    exchange_filters: list[dict[str, Any]]
    symbols: dict[str, dict[str, Any]]
    source: str = "cache"  # "rest" when this call fetched it
    _by_quote: dict[str, list[str]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_compact(cls, data: dict[str, Any], *, source: str) -> ExchangeSnapshot:
        return cls(
            fetched_at_ms=int(data["fetched_at_ms"]),
            timezone=str(data.get("timezone") or "UTC"),
            server_time_ms=data.get("serverTime"),
            rate_limits=list(data.get("rateLimits") or []),
            exchange_filters=list(data.get("exchangeFilters") or []),
            symbols={s["symbol"]: s for s in data.get("symbols") or []},
            source=source,
        )

    def age_ms(self, now: int | None = None) -> int:
        return max(0, (now or now_ms()) - self.fetched_at_ms)

    def symbols_for_quote(self, quote: str) -> list[str]:
        if not self._by_quote:
            for s in self.symbols.values():
                self._by_quote.setdefault(str(s.get("quoteAsset")), []).append(s["symbol"])
        return self._by_quote.get(quote, [])

    def require(self, symbol: str) -> dict[str, Any]:
        """The symbol's entry, or UnknownSymbolError suggesting the closest real symbols."""
        sym = normalize_symbol(symbol)
        info = self.symbols.get(sym)
        if info is None:
            raise unknown_symbol_error(sym, self.symbols)
        return info


def suggest(symbol: str, known: Iterable[str], n: int = 5) -> list[str]:
    """Closest real symbols to ``symbol``: swapped base/quote, prefix matches, then difflib similarity."""
    names = list(known)
    sym = symbol.upper()
    out: list[str] = []
    for i in range(2, len(sym) - 1):  # USDTBTC -> BTCUSDT
        swapped = sym[i:] + sym[:i]
        if swapped in names and swapped not in out:
            out.append(swapped)
    out.extend(x for x in sorted(names) if x.startswith(sym) and x not in out and len(x) - len(sym) <= 4)
    out.extend(x for x in difflib.get_close_matches(sym, names, n=n, cutoff=0.6) if x not in out)
    return out[:n]


def unknown_symbol_error(symbol: str, known: Iterable[str]) -> UnknownSymbolError:
    names = list(known)
    close = suggest(symbol, names)
    if close:
        tip = f"closest listed symbols: {', '.join(close)}"
    else:
        tip = "no similar symbol is listed; find one with search_symbols (by base or quote asset, or text)"
    return UnknownSymbolError(
        f"unknown symbol {symbol!r}: Binance does not list it ({len(names)} symbols checked); {tip}. "
        "Symbols are base+quote without separators, e.g. BTCUSDT.",
        status=400,
        code=-1121,
    )


def summarise_filters(filters: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the well-known filter values by SymbolInfo field name, the other filters verbatim)."""
    out: dict[str, Any] = {}
    rest: list[dict[str, Any]] = []
    for f in filters:
        t = f.get("filterType")
        if t == "PRICE_FILTER":
            out.update(tick_size=f.get("tickSize"), min_price=f.get("minPrice"), max_price=f.get("maxPrice"))
        elif t == "LOT_SIZE":
            out.update(step_size=f.get("stepSize"), min_qty=f.get("minQty"), max_qty=f.get("maxQty"))
        elif t == "MARKET_LOT_SIZE":
            out.update(
                market_step_size=f.get("stepSize"), market_min_qty=f.get("minQty"), market_max_qty=f.get("maxQty")
            )
        elif t == "NOTIONAL":
            out.update(min_notional=f.get("minNotional"), max_notional=f.get("maxNotional"))
        elif t == "MIN_NOTIONAL":
            out.setdefault("min_notional", f.get("minNotional"))
        else:
            rest.append(f)
    return {k: (str(v) if v is not None else None) for k, v in out.items()}, rest


def _rank(sym: dict[str, Any], q: str) -> int | None:
    """Lower is better; None = no match. Exact symbol, exact base, symbol prefix, base prefix, substring."""
    s, base = sym["symbol"], str(sym.get("baseAsset", ""))
    if s == q:
        return 0
    if base == q:
        return 1
    if s.startswith(q):
        return 2
    if base.startswith(q):
        return 3
    if q in s:
        return 4
    return None


def search(
    snap: ExchangeSnapshot,
    *,
    query: str | None = None,
    base_asset: str | None = None,
    quote_asset: str | None = None,
    status: str | None = "TRADING",
    permission: str | None = None,
) -> list[dict[str, Any]]:
    """Symbols matching every given filter, best text match first, then by symbol name."""
    q = query.strip().upper().replace("/", "").replace("-", "").replace("_", "") if query else None
    hits: list[tuple[int, str, dict[str, Any]]] = []
    for s in snap.symbols.values():
        if status and s.get("status") != status:
            continue
        if base_asset and s.get("baseAsset") != base_asset:
            continue
        if quote_asset and s.get("quoteAsset") != quote_asset:
            continue
        if permission and permission not in (s.get("permissions") or []):
            continue
        rank = 0
        if q:
            r = _rank(s, q)
            if r is None:
                continue
            rank = r
        hits.append((rank, s["symbol"], s))
    hits.sort(key=lambda h: (h[0], h[1]))
    return [h[2] for h in hits]


class DirectoryHost(Protocol):
    """What the directory needs of the replica (the Runtime): settings, keys, Redis, REST, its holder name."""

    settings: Settings
    keys: Keys
    holder: str

    @property
    def r(self) -> aioredis.Redis: ...

    @property
    def api(self) -> BinanceRest: ...


class SymbolDirectory:
    """exchangeInfo for one replica: process memo in front of the shared Redis copy in front of REST."""

    def __init__(self, rt: DirectoryHost) -> None:
        self.rt = rt
        self._memo: ExchangeSnapshot | None = None
        self._memo_until = 0
        self._lock = asyncio.Lock()

    @property
    def ttl_ms(self) -> int:
        return int(self.rt.settings.exchange_info_ttl_s * 1000)

    async def snapshot(self, *, refresh: bool = False) -> ExchangeSnapshot:
        """The current exchangeInfo (memo, then Redis, then REST)."""
        now = now_ms()
        if not refresh and self._memo is not None and now < self._memo_until:
            return self._memo
        async with self._lock:
            now = now_ms()
            if not refresh and self._memo is not None and now < self._memo_until:
                return self._memo
            try:
                try:
                    snap = await self._load(refresh=refresh)
                except (RedisError, OSError):  # shared cache down: still answer, from REST
                    snap = await self._fetch(store=False)
            except BinanceError:
                if self._memo is not None and self._memo.age_ms(now) < STALE_MAX_MS:
                    return self._memo  # serve the last good copy (its age says how old)
                raise
            self._memo = replace(snap, source="cache")  # later hits are served from the cache
            self._memo_until = snap.fetched_at_ms + self.ttl_ms
            return snap

    async def _load(self, *, refresh: bool) -> ExchangeSnapshot:
        key = self.rt.keys.cache(CACHE_NAME)
        if self.ttl_ms <= 0:
            return await self._fetch(store=False)
        if not refresh:
            blob = await self.rt.r.get(key)
            if blob is not None:
                return ExchangeSnapshot.from_compact(orjson.loads(blob), source="cache")
        lock = self.rt.keys.cache(LOCK_NAME)
        if refresh or await self.rt.r.set(lock, self.rt.holder, nx=True, px=LOCK_TTL_MS):
            try:
                return await self._fetch(store=True)
            finally:
                await self.rt.r.delete(lock)
        # another replica is fetching: wait for its copy (bounded), then fetch ourselves
        deadline = now_ms() + int(self.rt.settings.rest_timeout_s * 1000) + 2000
        delay = 0.05
        while now_ms() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.5)
            blob = await self.rt.r.get(key)
            if blob is not None:
                return ExchangeSnapshot.from_compact(orjson.loads(blob), source="cache")
            if not await self.rt.r.exists(lock):
                break
        return await self._fetch(store=True)

    async def _fetch(self, *, store: bool) -> ExchangeSnapshot:
        raw = await self.rt.api.get("/api/v3/exchangeInfo")
        compact = compact_exchange_info(raw, now_ms())
        if store:
            blob = orjson.dumps(compact, default=str)
            await self.rt.r.set(self.rt.keys.cache(CACHE_NAME), blob, px=self.ttl_ms)
        return ExchangeSnapshot.from_compact(compact, source="rest")

    async def require(self, symbol: str) -> tuple[dict[str, Any], ExchangeSnapshot]:
        snap = await self.snapshot()
        return snap.require(symbol), snap

    async def suggestion_error(self, symbol: str) -> BinanceError | None:
        """After Binance said -1121: an error naming close real symbols (None if exchangeInfo is unavailable)."""
        try:
            snap = await self.snapshot()
        except BinanceError:
            return None
        sym = symbol.upper()
        if sym in snap.symbols:
            return None
        return unknown_symbol_error(sym, snap.symbols)
