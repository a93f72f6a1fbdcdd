"""How a term's parts are built from the settings: the REST queues (spot and USD-M futures, each on its own
weight budget), the snapshot seam of the book manager, and the connection pools by route. Kept apart from
:mod:`.service`, which runs them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from binance_common.keys import Keys
from binance_common.rest import BinanceRest
from binance_common.settings import Settings
from binance_common.streams import StreamNameError, parse_stream
from binance_common.weights import futures_request_weight

from .futures_book import FUTURES_BOOK_PREFIX, futures_snapshot_limit
from .pool import Pool
from .restqueue import Priority, RestQueue
from .routes import Routes


def futures_rest(settings: Settings, redis: Any, keys: Keys) -> BinanceRest:
    """REST for fapi.binance.com with its own shared budget (``rl:fapi:`` keys, 2400/min by default)."""
    from binance_common.ratelimit import RedisGovernor

    governor = RedisGovernor(redis, keys.scoped("fapi:"), settings, limit=settings.futures_rest_max_weight_per_minute)
    return BinanceRest(settings, governor=governor, base_url=settings.futures_rest_base_url,
                       weigh=futures_request_weight)


class SnapshotRest:
    """The book manager's REST seam: snapshots at snapshot priority, futures books (``UM:<SYMBOL>``) from
    /fapi/v1/depth (at most 1000 levels there) on the futures queue."""

    def __init__(self, queue: RestQueue, futures_queue: RestQueue) -> None:
        self.queue = queue
        self.futures_queue = futures_queue

    async def get(self, path: str, params: dict[str, Any]) -> Any:
        sym = str(params.get("symbol", ""))
        if sym.startswith(FUTURES_BOOK_PREFIX):
            limit = futures_snapshot_limit(int(params.get("limit", 1000)))
            return await self.futures_queue.get(Priority.SNAPSHOT, "/fapi/v1/depth",
                                                {"symbol": sym[len(FUTURES_BOOK_PREFIX):], "limit": limit})
        return await self.queue.get(Priority.SNAPSHOT, path, params)


def routes(settings: Settings, on_data: Callable[..., None], on_failed: Callable[[list[str], str], None],
           on_live: Callable[[list[str], int], None], *, on_malformed: Any, on_lost: Callable[[list[str], str], None],
           on_error: Callable[[list[str], str], None], backpressure: Any) -> Routes:
    """The pools: spot on ``ws_base_url``, futures on ``futures_ws_base_url`` /public and /market; the futures
    pools' callbacks get the feed's ``um:`` names."""
    s = settings

    def make(url: str, prefix: str, max_per_conn: int) -> Pool:
        if not prefix:  # spot: the callbacks as they are (no per-message wrapper)
            data, failed, live, lost, error = on_data, on_failed, on_live, on_lost, on_error
        else:
            def data(conn: Any, stream: str, payload: bytes, recv_ms: int) -> None:
                on_data(conn, prefix + stream, payload, recv_ms)

            def failed(streams: list[str], reason: str) -> None:
                on_failed([prefix + x for x in streams], reason)

            def live(streams: list[str], conn_id: int) -> None:
                on_live([prefix + x for x in streams], conn_id)

            def lost(streams: list[str], reason: str) -> None:
                on_lost([prefix + x for x in streams], reason)

            def error(streams: list[str], reason: str) -> None:
                on_error([prefix + x for x in streams], reason)
        return Pool(url, data, failed, live, max_per_conn=max_per_conn, lifetime_s=s.connection_lifetime_s,
                    stale_after_s=s.stale_after_s, max_delay_s=s.reconnect_max_delay_s, proxy=s.ws_proxy or s.proxy,
                    on_malformed=on_malformed, on_lost=lost, on_error=error, backpressure=backpressure,
                    may_be_quiet=lambda name: _event_driven(prefix + name))

    return Routes(s.ws_base_url, s.futures_ws_base_url, make, spot_max=s.max_streams_per_connection,
                  futures_max=s.futures_max_streams_per_connection, silence_s=s.futures_silence_s)


def _event_driven(name: str) -> bool:
    """Whether Binance sends the feed's stream ``name`` only on events (its silence can be a calm market)."""
    try:
        return parse_stream(name).event_driven
    except StreamNameError:
        return False
