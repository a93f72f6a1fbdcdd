"""The Binance stream-name grammar: parse, validate and build every market stream name.

Pure functions, no I/O. A name that does not parse raises :class:`StreamNameError` whose message lists
what is allowed, so a tool can hand it straight to the agent.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum

KLINE_INTERVALS: tuple[str, ...] = (
    "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M",
)
TICKER_WINDOWS: tuple[str, ...] = ("1h", "4h", "1d")
DEPTH_LEVELS: tuple[int, ...] = (5, 10, 20)

# Full matches over explicit ASCII classes (``$`` would let a trailing newline through, ``\d`` and
# ``str.isdigit`` accept non-ASCII digits); a symbol must hold at least one letter or digit.
SYMBOL_RE = re.compile(r"(?=[A-Z0-9\-_.]*[A-Z0-9])[A-Z0-9\-_.]{1,20}")
_LOWER_SYMBOL_RE = re.compile(r"(?=[a-z0-9\-_.]*[a-z0-9])[a-z0-9\-_.]{1,20}")
_TZ_RE = re.compile(r"([+-])([01][0-9]):([0-5][0-9])")
_DEPTH_LEVELS = {str(n): n for n in DEPTH_LEVELS}
STREAM_CHARS_RE = re.compile(r"[A-Za-z0-9@_!.:+\-]+")
"""Every character an accepted stream name can hold (safe in Redis keys, lease members, newline-joined lists)."""


def _tz_ok(tz: str) -> bool:
    """``+HH:MM`` / ``-HH:MM`` within Binance's range, -12:00 to +14:00."""
    m = _TZ_RE.fullmatch(tz)
    if m is None:
        return False
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    return minutes <= (14 * 60 if m.group(1) == "+" else 12 * 60)


class StreamKind(StrEnum):
    TRADE = "trade"
    AGG_TRADE = "aggTrade"
    KLINE = "kline"
    MINI_TICKER = "miniTicker"
    ALL_MINI_TICKERS = "!miniTicker@arr"
    TICKER = "ticker"
    ROLLING_TICKER = "rollingTicker"
    ALL_ROLLING_TICKERS = "!ticker_window@arr"
    BOOK_TICKER = "bookTicker"
    AVG_PRICE = "avgPrice"
    PARTIAL_DEPTH = "partialDepth"
    DEPTH = "depth"
    MARK_PRICE = "markPrice"
    FORCE_ORDER = "forceOrder"
    REFERENCE_PRICE = "referencePrice"  # spot: the price-range execution rule's reference price, every second
    BLOCK_TRADE = "blockTrade"  # spot: block trades, as they happen


FUTURES_PREFIX = "um:"
"""USD-M futures streams are named ``um:<Binance name>`` here, so spot and futures never share a key
(``btcusdt@aggTrade`` exists on both)."""
FUTURES_KLINE_INTERVALS = tuple(i for i in KLINE_INTERVALS if i != "1s")
EVENT_DRIVEN_KINDS = frozenset({StreamKind.TRADE, StreamKind.AGG_TRADE, StreamKind.DEPTH, StreamKind.BOOK_TICKER,
                                StreamKind.FORCE_ORDER, StreamKind.BLOCK_TRADE})
FUTURES_PUBLIC_KINDS = frozenset({StreamKind.DEPTH, StreamKind.PARTIAL_DEPTH, StreamKind.BOOK_TICKER})
"""Futures streams Binance serves on ``/public`` (high-frequency book data); every other kind is on ``/market``.
A stream subscribed on the wrong path is acknowledged and then silent."""


TRADE_ID_FIELD: dict[StreamKind, str] = {StreamKind.TRADE: "t", StreamKind.AGG_TRADE: "a"}
"""The payload field holding a trade stream's contiguous id (trade id, aggregate trade id)."""

ALLOWED_FORMS = (
    "<symbol>@trade, <symbol>@aggTrade, <symbol>@kline_<interval>[@+HH:MM], <symbol>@miniTicker, "
    "!miniTicker@arr, <symbol>@ticker, <symbol>@ticker_<1h|4h|1d>, !ticker_<1h|4h|1d>@arr, "
    "<symbol>@bookTicker, <symbol>@avgPrice, <symbol>@depth<5|10|20>[@100ms], <symbol>@depth[@100ms], "
    "<symbol>@referencePrice, <symbol>@blockTrade; "
    "symbols are lowercase (e.g. btcusdt); intervals: " + " ".join(KLINE_INTERVALS) + "; USD-M futures: "
    "um:<symbol>@aggTrade, um:<symbol>@markPrice[@1s], um:<symbol>@kline_<interval>, um:<symbol>@miniTicker, "
    "um:<symbol>@ticker, um:<symbol>@bookTicker, um:<symbol>@forceOrder, um:<symbol>@depth[@100ms|@500ms], "
    "um:<symbol>@depth<5|10|20>[@100ms|@500ms]"
)


class StreamNameError(ValueError):
    """A stream name, symbol or interval that Binance does not offer."""


class SymbolError(ValueError):
    """A malformed trading-pair symbol."""


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One parsed stream name. ``name`` is the canonical (Binance) spelling."""

    name: str
    kind: StreamKind
    symbol: str | None = None  # upper-case, e.g. BTCUSDT; None for !...@arr streams
    interval: str | None = None  # kline interval
    timezone: str | None = None  # kline "+08:00"
    window: str | None = None  # rolling ticker window
    levels: int | None = None  # partial depth levels
    speed_ms: int | None = None  # depth update speed, 100 or 1000 (futures: 100, 250, 500)
    venue: str = "spot"  # spot, or um (USD-M futures)

    @property
    def binance_name(self) -> str:
        """The name Binance knows (without the ``um:`` prefix)."""
        return self.name[len(FUTURES_PREFIX):] if self.venue == "um" else self.name

    @property
    def route(self) -> str | None:
        """The futures WebSocket path the stream lives on (public or market); None for spot."""
        if self.venue != "um":
            return None
        return "public" if self.kind in FUTURES_PUBLIC_KINDS else "market"

    @property
    def event_driven(self) -> bool:
        """Whether Binance sends it only when something happens (a trade, a book change, a liquidation), so that
        minutes of silence can be a calm market. The rest are pushed on a timer (klines, tickers, average price,
        mark price, partial books): their silence is a broken connection."""
        return self.kind in EVENT_DRIVEN_KINDS

    @property
    def sequenced(self) -> bool:
        """Whether payloads carry ids that must be contiguous (trade t, aggTrade a, depth U/u)."""
        return self.kind in (StreamKind.TRADE, StreamKind.AGG_TRADE, StreamKind.DEPTH)


def normalize_symbol(symbol: str) -> str:
    """Upper-case a symbol and check its form (ASCII letters, digits, - _ . ; 1-20 chars, at least one letter or
    digit); ``BTC/USDT`` is read as ``BTCUSDT``."""
    if not isinstance(symbol, str):
        raise SymbolError("symbol must be a string such as BTCUSDT")
    s = symbol.strip().replace("/", "")  # BTC/USDT as people write it
    if not s.isascii() or not SYMBOL_RE.fullmatch(s := s.upper()):
        raise SymbolError(
            f"invalid symbol {symbol!r}: use the pair's letters and digits without separators, "
            "e.g. BTCUSDT (1-20 characters: A-Z 0-9 - _ .)"
        )
    return s


def _bad(name: str, why: str) -> StreamNameError:
    return StreamNameError(f"invalid stream {name!r}: {why}. Allowed forms: {ALLOWED_FORMS}")


def parse_stream(name: str) -> StreamSpec:
    """Parse a stream name such as ``btcusdt@kline_1m`` (or ``um:btcusdt@markPrice`` for USD-M futures) into
    a :class:`StreamSpec` (remembered for the last 4,096 valid names: every tool call parses its stream)."""
    if type(name) is str:
        return _parse_remembered(name)
    return _parse(name)


def _parse(name: str) -> StreamSpec:
    if not isinstance(name, str) or not name or len(name) > 64:
        raise _bad(str(name)[:80], "expected a non-empty name of at most 64 characters")
    if name.startswith(FUTURES_PREFIX):
        return _parse_futures(name)
    if name == "!miniTicker@arr":
        return StreamSpec(name, StreamKind.ALL_MINI_TICKERS)
    if name.startswith("!ticker_") and name.endswith("@arr"):
        window = name[len("!ticker_") : -len("@arr")]
        if window not in TICKER_WINDOWS:
            raise _bad(name, f"rolling window must be one of {', '.join(TICKER_WINDOWS)}")
        return StreamSpec(name, StreamKind.ALL_ROLLING_TICKERS, window=window)
    if name == "!ticker@arr":
        raise _bad(name, "!ticker@arr was retired by Binance in 2026; use !miniTicker@arr")
    sym, sep, rest = name.partition("@")
    if not sep or not rest:
        raise _bad(name, "expected <symbol>@<type>")
    if not _LOWER_SYMBOL_RE.fullmatch(sym):
        raise _bad(name, f"symbol part {sym!r} must be lowercase letters/digits, e.g. btcusdt")
    symbol = sym.upper()
    if rest == "trade":
        return StreamSpec(name, StreamKind.TRADE, symbol)
    if rest == "aggTrade":
        return StreamSpec(name, StreamKind.AGG_TRADE, symbol)
    if rest == "miniTicker":
        return StreamSpec(name, StreamKind.MINI_TICKER, symbol)
    if rest == "ticker":
        return StreamSpec(name, StreamKind.TICKER, symbol)
    if rest == "bookTicker":
        return StreamSpec(name, StreamKind.BOOK_TICKER, symbol)
    if rest == "avgPrice":
        return StreamSpec(name, StreamKind.AVG_PRICE, symbol)
    if rest == "referencePrice":
        return StreamSpec(name, StreamKind.REFERENCE_PRICE, symbol)
    if rest == "blockTrade":
        return StreamSpec(name, StreamKind.BLOCK_TRADE, symbol)
    if rest.startswith("kline_"):
        body = rest[len("kline_") :]
        interval, at, tz = body.partition("@")
        if interval not in KLINE_INTERVALS:
            raise _bad(name, f"kline interval {interval!r} is not one of {' '.join(KLINE_INTERVALS)}")
        if at and not _tz_ok(tz):
            raise _bad(name, f"kline timezone {tz!r} must look like +08:00 or -05:00 (from -12:00 to +14:00)")
        return StreamSpec(name, StreamKind.KLINE, symbol, interval=interval, timezone=tz or None)
    if rest.startswith("ticker_"):
        window = rest[len("ticker_") :]
        if window not in TICKER_WINDOWS:
            raise _bad(name, f"rolling window must be one of {', '.join(TICKER_WINDOWS)}")
        return StreamSpec(name, StreamKind.ROLLING_TICKER, symbol, window=window)
    if rest.startswith("depth"):
        body = rest[len("depth") :]
        levels_s, _, speed = body.partition("@")
        if speed not in ("", "100ms"):
            raise _bad(name, "depth speed must be @100ms or omitted (1000 ms)")
        speed_ms = 100 if speed == "100ms" else 1000
        if levels_s == "":
            return StreamSpec(name, StreamKind.DEPTH, symbol, speed_ms=speed_ms)
        levels = _DEPTH_LEVELS.get(levels_s)
        if levels is None:
            raise _bad(name, "partial depth levels must be 5, 10 or 20")
        return StreamSpec(name, StreamKind.PARTIAL_DEPTH, symbol, levels=levels, speed_ms=speed_ms)
    raise _bad(name, f"unknown stream type {rest!r}")


def _parse_futures(name: str) -> StreamSpec:
    """A USD-M futures stream (``um:`` + Binance's name)."""
    sym, sep, rest = name[len(FUTURES_PREFIX):].partition("@")
    if not sep or not rest or not _LOWER_SYMBOL_RE.fullmatch(sym):
        raise _bad(name, "expected um:<symbol>@<type> with a lowercase symbol, e.g. um:btcusdt@markPrice")
    symbol = sym.upper()
    simple = {"aggTrade": StreamKind.AGG_TRADE, "miniTicker": StreamKind.MINI_TICKER, "ticker": StreamKind.TICKER,
              "bookTicker": StreamKind.BOOK_TICKER, "forceOrder": StreamKind.FORCE_ORDER,
              "markPrice": StreamKind.MARK_PRICE, "markPrice@1s": StreamKind.MARK_PRICE}
    if rest in simple:
        return StreamSpec(name, simple[rest], symbol, speed_ms=1000 if rest.endswith("@1s") else None, venue="um")
    if rest.startswith("kline_"):
        interval = rest[len("kline_"):]
        if interval not in FUTURES_KLINE_INTERVALS:
            raise _bad(name, f"futures kline interval must be one of {' '.join(FUTURES_KLINE_INTERVALS)}")
        return StreamSpec(name, StreamKind.KLINE, symbol, interval=interval, venue="um")
    if rest.startswith("depth"):
        levels_s, _, speed = rest[len("depth"):].partition("@")
        if speed not in ("", "100ms", "500ms"):
            raise _bad(name, "futures depth speed must be @100ms, @500ms or omitted (250 ms)")
        speed_ms = int(speed[:-2]) if speed else 250
        if levels_s == "":
            return StreamSpec(name, StreamKind.DEPTH, symbol, speed_ms=speed_ms, venue="um")
        if levels_s not in _DEPTH_LEVELS:
            raise _bad(name, "partial depth levels must be 5, 10 or 20")
        return StreamSpec(name, StreamKind.PARTIAL_DEPTH, symbol, levels=_DEPTH_LEVELS[levels_s], speed_ms=speed_ms,
                          venue="um")
    raise _bad(name, f"unknown futures stream type {rest!r}")


_parse_remembered = functools.lru_cache(maxsize=4096)(_parse)  # a refused name raises each time: not kept


def validate_stream(name: str) -> str:
    """Return the canonical name or raise :class:`StreamNameError`."""
    return parse_stream(name).name


def build_stream(
    kind: str,
    symbol: str | None = None,
    *,
    interval: str | None = None,
    levels: int | None = None,
    speed_ms: int | None = None,
    window: str | None = None,
    timezone: str | None = None,
) -> str:
    """Build a canonical stream name from parts; raises the same errors as :func:`parse_stream`.

    ``kind`` is one of: trade, aggTrade, kline, miniTicker, ticker, rollingTicker, bookTicker, avgPrice,
    depth (diffs; with ``levels`` 5/10/20 a partial book), referencePrice, blockTrade, allMiniTickers,
    allRollingTickers.
    """
    k = kind.strip()
    low = k.lower()
    if low in ("allminitickers", "!miniticker@arr"):
        return parse_stream("!miniTicker@arr").name
    if low in ("allrollingtickers",):
        return parse_stream(f"!ticker_{window or ''}@arr").name
    if symbol is None:
        raise StreamNameError(f"stream kind {kind!r} needs a symbol, e.g. BTCUSDT")
    sym = normalize_symbol(symbol).lower()
    suffix = {
        "trade": "trade",
        "aggtrade": "aggTrade",
        "miniticker": "miniTicker",
        "ticker": "ticker",
        "bookticker": "bookTicker",
        "avgprice": "avgPrice",
        "referenceprice": "referencePrice",
        "blocktrade": "blockTrade",
    }.get(low)
    if suffix:
        name = f"{sym}@{suffix}"
    elif low == "kline":
        name = f"{sym}@kline_{interval or ''}" + (f"@{timezone}" if timezone else "")
    elif low in ("rollingticker", "ticker_window"):
        name = f"{sym}@ticker_{window or ''}"
    elif low in ("depth", "partialdepth"):
        if low == "partialdepth" and levels is None:
            raise StreamNameError("a partialDepth stream needs levels: 5, 10 or 20 (without levels: kind depth)")
        speed = "" if speed_ms in (None, 1000) else f"@{speed_ms}ms"
        name = f"{sym}@depth{'' if levels is None else levels}{speed}"
    else:
        raise StreamNameError(
            f"unknown stream kind {kind!r}; allowed: trade, aggTrade, kline, miniTicker, ticker, "
            "rollingTicker, bookTicker, avgPrice, depth, allMiniTickers, allRollingTickers"
        )
    return parse_stream(name).name


def stream_symbol(name: str) -> str | None:
    """Upper-case symbol of a stream name, or None for all-market streams (cheap, no validation)."""
    if name.startswith("!"):
        return None
    return name.removeprefix(FUTURES_PREFIX).partition("@")[0].upper()
