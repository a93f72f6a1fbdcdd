"""Routes: which pool a stream goes to (spot, futures /public, futures /market) under which name, and the
wrong-path rule (timer-driven streams moved once and back; event-driven ones only reported)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from binance_streamd.routes import Routes


@dataclass
class FakePool:
    url: str
    streams: set[str] = field(default_factory=set)
    slots: list[Any] = field(default_factory=list)
    connects: int = 0

    def add(self, names: list[str]) -> None:
        self.streams |= set(names)

    def remove(self, names: list[str]) -> None:
        self.streams -= set(names)

    def slot_of(self, name: str) -> Any:
        return name if name in self.streams else None


@dataclass
class St:
    last_recv: int = 0
    reason: str = ""


def routes(silence_s: float = 0.0) -> Routes:
    return Routes("wss://spot", "wss://fut", lambda url, prefix, n: FakePool(url), spot_max=1024, futures_max=200,
                  silence_s=silence_s)


def pools(r: Routes) -> dict[str, set[str]]:
    return {k: set(p.streams) for k, p in r.pools.items()}  # type: ignore[attr-defined]


def test_each_stream_goes_to_its_venue_and_path_under_binances_name() -> None:
    r = routes()
    r.add(["btcusdt@aggTrade", "um:btcusdt@aggTrade", "um:btcusdt@depth@100ms", "um:btcusdt@bookTicker",
           "um:ethusdt@markPrice@1s"])
    assert pools(r) == {"spot": {"btcusdt@aggTrade"}, "market": {"btcusdt@aggTrade", "ethusdt@markPrice@1s"},
                        "public": {"btcusdt@depth@100ms", "btcusdt@bookTicker"}}
    assert r.pools["public"].url == "wss://fut/public"  # type: ignore[attr-defined]
    r.remove(["um:btcusdt@aggTrade"])
    assert pools(r)["market"] == {"ethusdt@markPrice@1s"} and pools(r)["spot"] == {"btcusdt@aggTrade"}


def test_a_silent_timer_stream_moves_once_then_back_and_an_event_stream_is_only_reported() -> None:
    r = routes(silence_s=0.0)
    states = {"um:ethusdt@markPrice@1s": St(), "um:btcusdt@aggTrade": St()}
    r.add(list(states))
    for name in states:
        r.acknowledged(name)
    assert r.check_silent(states) == ["um:ethusdt@markPrice@1s"]
    assert "ethusdt@markPrice@1s" in pools(r)["public"] and "moved to /public" in states["um:ethusdt@markPrice@1s"].reason
    assert "btcusdt@aggTrade" in pools(r)["market"] and "quiet contract" in states["um:btcusdt@aggTrade"].reason
    r.acknowledged("um:ethusdt@markPrice@1s")  # silent on the other path as well: back home, reported
    assert r.check_silent(states) == []
    assert "ethusdt@markPrice@1s" in pools(r)["market"] and "kept on /market" in states["um:ethusdt@markPrice@1s"].reason
    for _ in range(3):  # and it stays there: no more moves, whatever the acknowledgements
        r.acknowledged("um:ethusdt@markPrice@1s")
        assert r.check_silent(states) == [] and "ethusdt@markPrice@1s" in pools(r)["market"]
    assert "kept on /market" in states["um:ethusdt@markPrice@1s"].reason
    states["um:btcusdt@aggTrade"].last_recv = 10**13  # data at last: the report goes
    r.check_silent(states)
    assert states["um:btcusdt@aggTrade"].reason == ""


def test_data_after_the_acknowledgement_clears_the_watch() -> None:
    r = routes(silence_s=0.0)
    st = St()
    r.add(["um:btcusdt@markPrice"])
    r.acknowledged("um:btcusdt@markPrice")
    st.last_recv = 10**13  # a message after the ack
    assert r.check_silent({"um:btcusdt@markPrice": st}) == [] and st.reason == ""
    assert "btcusdt@markPrice" in pools(r)["market"]
