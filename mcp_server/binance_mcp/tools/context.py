"""What every tool shares: the typed context tools run with, the tool table entry and its binding to an
MCPServer, annotations, argument types and list sizes.

A tool is a module-level ``async def name(tc: ToolContext, <arguments>) -> Annotated[CallToolResult, Model]``
whose docstring is its description; each domain module lists its tools in ``TOOLS`` (:class:`ToolSpec`), and
:func:`bind` turns one into what the SDK registers: the same signature without ``tc``, anticipated failures
mapped to tool errors (:func:`~binance_mcp.errors.to_tool_error`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import redis.asyncio as aioredis
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from binance_common.errors import BinanceError, InvalidSymbolError
from binance_common.keys import Keys
from binance_common.rest import BinanceRest
from binance_common.settings import Settings
from binance_common.signed import SignedRest
from binance_common.streams import normalize_symbol

from ..errors import ANTICIPATED, to_tool_error
from ..feed.fresh import SourceChoice
from ..feed.leases import LeaseKeeper
from ..feed.reader import FeedReader
from ..runtime import Runtime
from ..symbols import SymbolDirectory

READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=True)
"""Market tools: read Binance (an open world), change nothing."""
READ_ONLY_LOCAL = ToolAnnotations(readOnlyHint=True, openWorldHint=False, idempotentHint=True)
"""Stream reads: only the shared feed in Redis."""
SUBSCRIBE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True, openWorldHint=True)
READ_ACCOUNT = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=True)
"""Account tools: signed reads of the configured account, change nothing."""
NO_KEY = ("no API key configured: set BINANCE_MCP_API_KEY and BINANCE_MCP_API_SECRET (HMAC) or "
          "BINANCE_MCP_PRIVATE_KEY_FILE (Ed25519/RSA) in the server's environment (README: Account tools)")
UNSUBSCRIBE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True, openWorldHint=False)

# Sizes: (default, maximum) of every list a tool returns.
BOOK_LEVELS = (20, 1000)
TRADES = (50, 1000)
KLINES = (100, 1000)
SYMBOL_ROWS = (50, 500)
SEARCH_ROWS = (20, 200)
PRICE_ROWS = (100, 1000)
BOOK_TICKER_ROWS = (50, 500)
TICKER_ROWS = (20, 200)
MULTI_SYMBOLS_MAX = 100  # Binance's cap on `symbols` per request
MAX_ID = 10**18  # trade and aggregate trade ids are int64 on Binance; anything above is a typo
BATCH_SYMBOLS_MAX = 200  # tradingDay/rolling tickers by quote asset: at most 2 requests of 100 (weight 200 each)

Interval = Literal["1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"]
SymbolStatus = Literal["TRADING", "BREAK", "HALT", "PRE_TRADING", "POST_TRADING", "END_OF_DAY", "AUCTION_MATCH", "ANY"]

SymbolArg = Annotated[
    str, Field(min_length=1, max_length=20, description="Trading pair without separators, e.g. BTCUSDT.")
]
SourceArg = Annotated[
    SourceChoice,
    Field(
        description="auto: answer from the live feed when it holds fresh data (no REST weight), else REST; "
        "rest: always Binance REST; stream: only the live feed (error when it has nothing fresh)."
    ),
]
TimeArg = Annotated[
    int | str | None,
    Field(description="ms since the Unix epoch, or ISO-8601 such as 2024-01-01 or 2024-01-01T12:00:00Z (UTC)."),
]
SymbolName = Annotated[str, Field(min_length=1, max_length=20)]
"""A pair, described where it is used (stream tools)."""
AssetArg = Annotated[str | None, Field(max_length=20, description="Asset code, e.g. USDT, BTC.")]
SymbolsArg = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=20)]] | None,
    Field(max_length=MULTI_SYMBOLS_MAX, description="Only these pairs (at most 100), e.g. ['BTCUSDT','ETHUSDT']."),
]


def unique_symbols(symbols: list[str] | None) -> list[str] | None:
    """Normalised symbols without repeats (None for none)."""
    if not symbols:
        return None
    return list(dict.fromkeys(normalize_symbol(x) for x in symbols))




class ToolContext:
    """The replica as tools see it: settings, Redis, the feed, REST with symbol suggestions, the symbol
    directory. One per server; cheap accessors over the :class:`~binance_mcp.runtime.Runtime`."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.mcp: Any = None  # the MCPServer the tools are registered on (set by tools.register)
        self.registered: set[str] = set()

    @property
    def settings(self) -> Settings:
        return self.rt.settings

    @property
    def keys(self) -> Keys:
        return self.rt.keys

    @property
    def r(self) -> aioredis.Redis:
        return self.rt.r

    @property
    def api(self) -> BinanceRest:
        return self.rt.api

    @property
    def feed(self) -> FeedReader:
        return self.rt.feed

    @property
    def leases(self) -> LeaseKeeper:
        return self.rt.leases

    @property
    def directory(self) -> SymbolDirectory:
        return self.rt.directory

    async def only_quoted(self, rows: list[Any], quote: str | None) -> list[Any]:
        """Keep rows (dicts or models with .symbol) whose symbol's quote asset is ``quote``."""
        if quote is None:
            return rows
        allowed = set((await self.directory.snapshot()).symbols_for_quote(quote))
        return [r for r in rows if (r["symbol"] if isinstance(r, dict) else r.symbol) in allowed]

    async def rest(self, path: str, params: dict[str, Any] | None = None, *, symbols: list[str] | None = None) -> Any:
        """GET ``path``; a Binance -1121 becomes an error naming the closest real symbols."""
        try:
            return await self.rt.api.get(path, params)
        except InvalidSymbolError as e:
            raise await self._suggest(e, symbols) from e

    async def futures(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET a USD-M futures endpoint (fapi.binance.com, its own weight budget)."""
        assert self.rt.futures_rest is not None, "Runtime.start() was not awaited"
        for prefix, limit in self.rt.futures_limits:  # request-count limits of some endpoint families
            if path.startswith(prefix):
                await limit.acquire(1)
        try:
            return await self.rt.futures_rest.get(path, params)
        except InvalidSymbolError as e:
            raise InvalidSymbolError(f"{e}: not a USD-M futures contract; get_futures_exchange_info(query=...) lists "
                                     "them (e.g. BTCUSDT, ETHUSDT, or BTCUSDT_260626 for a delivery contract)",
                                     status=e.status, code=e.code) from e

    @property
    def signed(self) -> SignedRest:
        """The account's signed client (the account tools are registered only when a key is configured)."""
        if self.rt.signed is None:
            raise ToolError(NO_KEY)
        return self.rt.signed

    async def signed_get(self, path: str, params: dict[str, Any] | None = None, *,
                         symbols: list[str] | None = None) -> Any:
        """Signed GET (USER_DATA) of ``path``; -1121 names the closest real symbols like :meth:`rest`."""
        try:
            return await self.signed.get(path, params)
        except InvalidSymbolError as e:
            raise await self._suggest(e, symbols) from e

    async def _suggest(self, e: InvalidSymbolError, symbols: list[str] | None) -> Exception:
        for sym in symbols or []:
            better = await self.directory.suggestion_error(sym)
            if better is not None:
                return better
        return e

    async def symbol(self, symbol: str) -> str:
        """The symbol as Binance lists it: ``BTC/USDT``, ``btc-usdt``, ``BTC_USDT`` and ``btcusdt`` all mean
        BTCUSDT when exchangeInfo lists BTCUSDT (separators are only looked up when present)."""
        sym = normalize_symbol(symbol)
        if not any(c in sym for c in "-_."):
            return sym
        try:
            known = (await self.directory.snapshot()).symbols
        except BinanceError:
            return sym
        bare = sym.replace("-", "").replace("_", "").replace(".", "")
        return bare if sym not in known and bare in known else sym


ToolFn = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One row of a tool table: the function (its name is the tool's name, its docstring the description
    unless ``description`` is given), a title and annotations."""

    fn: ToolFn
    title: str
    annotations: ToolAnnotations
    description: str | None = None

    @property
    def name(self) -> str:
        return self.fn.__name__


def bind(spec: ToolSpec, tc: ToolContext) -> ToolFn:
    """The tool as the SDK registers it: ``spec.fn`` with ``tc`` supplied, the rest of its signature (with
    evaluated annotations, which the SDK reads to build the input and output schemas) unchanged."""
    fn = spec.fn
    sig = inspect.signature(fn, eval_str=True)
    params = list(sig.parameters.values())[1:]

    @functools.wraps(fn)
    async def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(tc, *args, **kwargs)
        except ANTICIPATED as e:
            raise to_tool_error(e) from e
        except ValueError as e:
            raise ToolError(str(e)) from e

    del call.__wrapped__  # the SDK must see the signature below, not fn's
    call.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    call.__annotations__ = {p.name: p.annotation for p in params} | {"return": sig.return_annotation}
    return call
