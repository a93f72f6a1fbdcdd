"""Run cryptofeed's Binance feed (aggTrade and/or bookTicker -> its Redis Streams backends) against the
benchmark flood.

Runs under cryptofeed's own venv: ``bench/.venv-cryptofeed/bin/python bench/cf_runner.py WS_URL REST_URL
REDIS_PORT N_SYMBOLS [KINDS]`` (KINDS: comma-separated aggTrade,bookTicker; cryptofeed's TRADES channel is
Binance's aggTrade and its TICKER channel is bookTicker). Not imported by the project; cryptofeed is only a
benchmark peer.
"""

import sys

from cryptofeed import FeedHandler
from cryptofeed.backends.redis import TickerStream, TradeStream
from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint
from cryptofeed.defines import TICKER, TRADES
from cryptofeed.exchanges import Binance


def _allow_plain_ws() -> None:
    """cryptofeed refuses ws:// addresses; the flood is plain ws on loopback, so accept it (benchmark only)."""
    import cryptofeed.connection as cc

    orig = cc.WSAsyncConn.__init__

    def init(self, address, *a, **kw):  # type: ignore[no-untyped-def]
        plain = address.startswith("ws://")
        orig(self, "wss://" + address[5:] if plain else address, *a, **kw)
        if plain:
            self.address = address

    cc.WSAsyncConn.__init__ = init  # type: ignore[method-assign]


def main() -> None:
    _allow_plain_ws()
    ws_url, rest_url, redis_port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    kinds = (sys.argv[5] if len(sys.argv) > 5 else "aggTrade").split(",")
    backends = {"aggTrade": (TRADES, TradeStream), "bookTicker": (TICKER, TickerStream)}
    channels = [backends[k][0] for k in kinds]
    callbacks = {backends[k][0]: backends[k][1](host="127.0.0.1", port=redis_port) for k in kinds}

    class SimBinance(Binance):
        websocket_endpoints = [WebsocketEndpoint(ws_url)]
        rest_endpoints = [RestEndpoint(rest_url, routes=Routes("/api/v3/exchangeInfo",
                                                                l2book="/api/v3/depth?symbol={}&limit={}"))]

    symbols = [f"S{i:04d}-USDT" for i in range(n)]
    fh = FeedHandler(config={"log": {"filename": "/dev/null", "level": "WARNING"}, "uvloop": False})
    fh.add_feed(SimBinance(symbols=symbols, channels=channels, callbacks=callbacks))
    fh.run()


if __name__ == "__main__":
    main()
