"""Order books the daemon keeps (``book:<SYMBOL>``): the live-book answer, and a fresh book for the market
tools. A book is served only while the daemon reports it live (continuity proven), never while it resyncs."""

from __future__ import annotations

from decimal import Decimal

from binance_common.feedstore import BookState, decode_book
from binance_common.streams import FUTURES_PREFIX, build_stream, normalize_symbol
from binance_common.timeutil import now_ms

from ..answers.book import OrderBookView, book_view
from ..answers.provenance import BOOK_LIMITS, STATE_NOT_SUBSCRIBED, Fresh, freshness, iso_ms
from .base import FeedBase, FeedError, text


class BookReads(FeedBase):
    async def book(self, symbol: str, *, levels: int, band_pct: Decimal, futures: bool = False) -> OrderBookView:
        """``futures``: the USD-M book (``book:UM:<SYMBOL>``, kept from ``um:<s>@depth@100ms``)."""
        sym = normalize_symbol(symbol)
        pre = FUTURES_PREFIX if futures else ""
        lower = pre + sym.lower()
        pipe = self.r.pipeline(transaction=False)
        pipe.get(self.keys.book(pre.upper() + sym))
        pipe.hget(self.keys.status(pre + build_stream("depth", sym, speed_ms=100)), "state")
        pipe.hget(self.keys.status(pre + build_stream("depth", sym) if not futures else lower + "@depth"), "state")
        blob, st100, st1000 = await pipe.execute()
        state = text(st100) or text(st1000)
        value = decode_book(blob)
        if value is None:
            raise FeedError(
                f"no live order book for {sym} yet (its depth stream state: {state or STATE_NOT_SUBSCRIBED}): "
                f"the feed keeps local books for BINANCE_MCP_ORDER_BOOK_SYMBOLS and for every subscribed "
                f"{lower}@depth@100ms stream. Subscribe to {lower}@depth@100ms (subscribe_streams) and ask again "
                "in a second, or use the REST order-book tool"
            )
        if value.state is BookState.UNSUBSCRIBED:
            raise FeedError(
                f"the feed no longer keeps the order book of {sym} (nothing subscribes {lower}@depth@100ms); "
                f"subscribe to it (subscribe_streams) or use the REST order-book tool (get_order_book)"
            )
        if not value.live:
            since = f" since {iso_ms(value.since)} ({max(0, now_ms() - value.since) / 1000:.1f} s)" if value.since else ""
            raise FeedError(
                f"the order book of {sym} is resyncing{since}: after a reconnect, a restart or missed updates the "
                "feed serves a book only once its continuity is proven again (usually within a second or two). "
                "Use the REST order-book tool (get_order_book) meanwhile, or ask again shortly"
            )
        fr = freshness(now_ms=now_ms(), threshold_ms=BOOK_LIMITS.stale_ms, received_ms=value.asof or value.event_time,
                       state=state or "live", event_time_ms=value.event_time)
        book = {"lastUpdateId": value.last_update_id, "bids": value.bids, "asks": value.asks}
        try:
            return book_view(sym, book, levels=levels, band_pct=band_pct, freshness=fr)
        except ValueError as e:
            raise FeedError(f"order book for {sym} is malformed in the feed store: {e}") from e

    async def fresh_book(self, symbol: str) -> Fresh | None:
        """The local order book of ``symbol`` when it is live and updated within its serve limit; the payload
        is ``{"lastUpdateId", "bids", "asks"}`` like a depth answer."""
        value = decode_book(await self.r.get(self.keys.book(symbol)))
        if value is None or not value.live or value.last_update_id is None:
            return None
        asof = value.asof if isinstance(value.asof, int) else 0
        age = max(0, now_ms() - asof)
        if age > BOOK_LIMITS.serve_ms:
            return None
        payload = {"lastUpdateId": value.last_update_id, "bids": value.bids, "asks": value.asks}
        return Fresh(f"book:{symbol.upper()}", payload, asof, age)
