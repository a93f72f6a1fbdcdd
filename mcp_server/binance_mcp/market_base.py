"""What every market tool shares: the runtime handle, REST with symbol suggestions, provenance, argument types
and list sizes (default, maximum)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from mcp.types import ToolAnnotations
from pydantic import Field

from binance_common.errors import BinanceError, InvalidSymbolError
from binance_common.streams import normalize_symbol
from binance_common.timeutil import now_ms

from .market_convert import s
from .runtime import Runtime
from .stream_first import Fresh, SourceChoice
from .symbols import directory

READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=True)

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
AssetArg = Annotated[str | None, Field(max_length=20, description="Asset code, e.g. USDT, BTC.")]


class Market:
    """What every market tool shares: the runtime, REST with symbol suggestions, provenance helpers."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def rest(self, path: str, params: dict[str, Any] | None = None, *, symbols: list[str] | None = None) -> Any:
        """GET ``path``; a Binance -1121 becomes an error naming the closest real symbols."""
        try:
            return await self.rt.api.get(path, params)
        except InvalidSymbolError as e:
            for sym in symbols or []:
                better = await directory(self.rt).suggestion_error(sym)
                if better is not None:
                    raise better from e
            raise

    async def symbol(self, symbol: str) -> str:
        """The symbol as Binance lists it: ``BTC/USDT``, ``btc-usdt``, ``BTC_USDT`` and ``btcusdt`` all mean
        BTCUSDT when exchangeInfo lists BTCUSDT (separators are only looked up when present)."""
        sym = normalize_symbol(symbol)
        if not any(c in sym for c in "-_."):
            return sym
        try:
            known = (await directory(self.rt).snapshot()).symbols
        except BinanceError:
            return sym
        bare = sym.replace("-", "").replace("_", "").replace(".", "")
        return bare if sym not in known and bare in known else sym

    @staticmethod
    def rest_meta() -> dict[str, Any]:
        return {"source": "rest", "as_of_ms": now_ms(), "age_ms": 0}

    @staticmethod
    def ws_meta(f: Fresh) -> dict[str, Any]:
        return {"source": "ws", "as_of_ms": f.received_ms, "age_ms": f.age_ms, "stream": f.stream}


def sym_of(symbol: str) -> str:
    return normalize_symbol(symbol)


def more_hint(total: int, shown: int, max_limit: int, narrow: str) -> str | None:
    if total <= shown:
        return None
    if shown < max_limit:
        return f"showing {shown} of {total}; raise limit (max {max_limit}) or {narrow}"
    return f"showing {shown} of {total} (the maximum); {narrow}"



def plain(v: Any) -> Any:
    """Decimals from the JSON decoder back to Binance's exact strings; anything else unchanged."""
    return s(v) if isinstance(v, Decimal) else v
