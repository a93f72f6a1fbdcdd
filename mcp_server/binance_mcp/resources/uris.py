"""The resource URI grammar: parse, canonicalise, and map feed updates to URIs. Pure functions, no I/O.

=================================  ============================================  =========================
URI                                content                                       live updates from
=================================  ============================================  =========================
``binance://stream/{stream}``      latest message of a stream + freshness        the stream's name
``binance://book/{symbol}``        local order book top levels, spread, depth    ``book:<SYMBOL>``
``binance://ticker/{symbol}``      24 h ticker from ``<s>@ticker``               ``<s>@ticker``
``binance://feed/status``          daemon heartbeat, connections, lag            ``daemon:stats`` changes
=================================  ============================================  =========================

Canonical spelling: the stream name as Binance spells it, unescaped (``binance://stream/btcusdt@trade``),
upper-case symbols for books and tickers (``binance://book/BTCUSDT``). Notifications always carry the
canonical URI; :func:`canonical_uri` turns any accepted spelling (percent-escaped, lower-case symbol) into
it so subscriptions and notifications compare as plain strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from binance_common.keys import BOOK_UPDATE_PREFIX
from binance_common.streams import StreamNameError, build_stream, normalize_symbol, parse_stream

SCHEME = "binance://"
STREAM_TEMPLATE = "binance://stream/{stream}"
BOOK_TEMPLATE = "binance://book/{symbol}"
TICKER_TEMPLATE = "binance://ticker/{symbol}"
FEED_STATUS_URI = "binance://feed/status"

ALLOWED_URIS = (
    f"{STREAM_TEMPLATE} (e.g. binance://stream/btcusdt@trade), {BOOK_TEMPLATE} (e.g. binance://book/BTCUSDT), "
    f"{TICKER_TEMPLATE} (e.g. binance://ticker/BTCUSDT), {FEED_STATUS_URI}"
)


class ResourceURIError(ValueError):
    """A URI that names none of this server's resources."""


@dataclass(frozen=True, slots=True)
class ResourceTarget:
    """What a resource URI points at. ``name`` is the stream name or the upper-case symbol."""

    kind: Literal["stream", "book", "ticker", "feed"]
    name: str

    @property
    def uri(self) -> str:
        if self.kind == "feed":
            return FEED_STATUS_URI
        return f"{SCHEME}{self.kind}/{self.name}"

    @property
    def streams(self) -> tuple[str, ...]:
        """Streams the feed must carry for this resource to update (the leases a subscription takes)."""
        if self.kind == "stream":
            return (self.name,)
        if self.kind == "ticker":
            return (build_stream("ticker", self.name),)
        # books are kept for the daemon's configured symbols (order_book_symbols), which are always on
        return ()


def parse_uri(uri: str) -> ResourceTarget:
    """Parse a resource URI; raises :class:`ResourceURIError` saying what is allowed."""
    if not isinstance(uri, str) or not uri.startswith(SCHEME) or len(uri) > 200:
        raise ResourceURIError(f"unknown resource URI {str(uri)[:100]!r}; allowed: {ALLOWED_URIS}")
    rest = uri[len(SCHEME) :]
    if rest == "feed/status":
        return ResourceTarget("feed", "status")
    kind, sep, raw = rest.partition("/")
    value = unquote(raw)
    if not sep or not value or "/" in value:
        raise ResourceURIError(f"unknown resource URI {uri[:100]!r}; allowed: {ALLOWED_URIS}")
    try:
        if kind == "stream":
            return ResourceTarget("stream", parse_stream(value).name)
        if kind in ("book", "ticker"):
            return ResourceTarget(kind, normalize_symbol(value))  # type: ignore[arg-type]
    except (StreamNameError, ValueError) as e:
        raise ResourceURIError(f"bad resource URI {uri[:100]!r}: {e}") from e
    raise ResourceURIError(f"unknown resource URI {uri[:100]!r}; allowed: {ALLOWED_URIS}")


def canonical_uri(uri: str) -> str:
    return parse_uri(uri).uri


def uris_for_update(name: str) -> tuple[str, ...]:
    """Resource URIs affected by one name on the daemon's ``updates`` channel (no validation: trusted)."""
    if name.startswith(BOOK_UPDATE_PREFIX):
        book = name[len(BOOK_UPDATE_PREFIX):].upper()
        return () if ":" in book else (f"{SCHEME}book/{book}",)  # futures books (UM:...) have no resource
    stream_uri = f"{SCHEME}stream/{name}"
    sym, _, rest = name.partition("@")
    if rest == "ticker" and not name.startswith("!") and ":" not in sym:
        return (stream_uri, f"{SCHEME}ticker/{sym.upper()}")
    return (stream_uri,)


def ticker_stream(symbol: str) -> str:
    """The stream behind ``binance://ticker/{symbol}``."""
    return build_stream("ticker", symbol)
