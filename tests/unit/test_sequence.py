"""StreamSequencer: pure, hand-made payloads, no event loop."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from binance_common.streams import StreamKind, StreamNameError
from binance_streamd.sequence import DUPLICATE, NEW, SeqVerdict, StreamSequencer


def trade(t: int, E: int = 1) -> dict:
    return {"e": "trade", "E": E, "s": "BTCUSDT", "t": t, "p": "1.0", "q": "2", "T": E, "m": True, "M": True}


def agg(a: int) -> dict:
    return {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": a, "p": "1", "q": "1", "f": a, "l": a, "T": 1,
            "m": False, "M": True}


def diff(U: int, u: int) -> dict:
    return {"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": U, "u": u, "b": [], "a": []}


def kline(E: int, close: str = "1.0", closed: bool = False) -> dict:
    return {"e": "kline", "E": E, "s": "BTCUSDT", "k": {"t": 60_000, "T": 119_999, "c": close, "x": closed}}


@pytest.mark.parametrize(("stream", "make"), [("btcusdt@trade", trade), ("btcusdt@aggTrade", agg)])
def test_trade_ids_contiguous(stream, make) -> None:
    seq = StreamSequencer(stream)
    assert seq.last_id is None
    assert seq.check(make(10)) == SeqVerdict("new")  # the first one starts the sequence
    assert seq.check(make(11)).kind == "new"
    assert seq.check(make(11)).kind == "duplicate"
    assert seq.check(make(5)).kind == "duplicate"
    assert seq.last_id == 11
    v = seq.check(make(15))
    assert v == SeqVerdict("gap", 12, 14)
    assert v.is_new  # the payload after a gap is itself fresh
    assert seq.last_id == 15
    assert seq.check(make(13)).kind == "duplicate"  # a late arrival inside the gap: backfill covers it
    assert seq.check(make(16)).kind == "new"


def test_gap_of_one_id() -> None:
    seq = StreamSequencer("btcusdt@trade", last_id=99)
    assert seq.check(trade(101)) == SeqVerdict("gap", 100, 100)


def test_depth_diffs() -> None:
    seq = StreamSequencer("btcusdt@depth@100ms")
    assert seq.check(diff(100, 105)).kind == "new"
    assert seq.check(diff(106, 106)).kind == "new"
    assert seq.check(diff(100, 105)).kind == "duplicate"
    assert seq.check(diff(106, 106)).kind == "duplicate"  # u == last
    assert seq.check(diff(104, 110)).kind == "new"  # overlapping start is not a gap (U <= last + 1)
    assert seq.last_id == 110
    assert seq.check(diff(115, 120)) == SeqVerdict("gap", 111, 114)
    assert seq.last_id == 120
    assert seq.check(diff(121, 121)).kind == "new"


def test_depth_1000ms_stream_same_rule() -> None:
    seq = StreamSequencer("btcusdt@depth")
    seq.check(diff(1, 2))
    assert seq.check(diff(4, 4)) == SeqVerdict("gap", 3, 3)


def test_book_ticker_increasing_without_gaps() -> None:
    seq = StreamSequencer("btcusdt@bookTicker")
    bt = lambda u: {"u": u, "s": "BTCUSDT", "b": "1", "B": "1", "a": "2", "A": "1"}  # noqa: E731
    assert seq.check(bt(400)).kind == "new"
    assert seq.check(bt(900)).kind == "new"  # jumps are normal: no gap notion
    assert seq.check(bt(900)).kind == "duplicate"
    assert seq.check(bt(899)).kind == "duplicate"  # older
    assert seq.last_id == 900


def test_partial_depth_by_last_update_id() -> None:
    seq = StreamSequencer("btcusdt@depth5@100ms")
    p = lambda i: {"lastUpdateId": i, "bids": [], "asks": []}  # noqa: E731
    assert seq.check(p(10)).kind == "new"
    assert seq.check(p(10)).kind == "duplicate"
    assert seq.check(p(50)).kind == "new"


def test_event_time_streams_duplicate_only_when_equal() -> None:
    seq = StreamSequencer("btcusdt@kline_1m")
    assert seq.check(kline(1000)).kind == "new"
    assert seq.check(kline(1000)).kind == "duplicate"  # same E, same payload
    assert seq.check(kline(1000, close="2.0")).kind == "new"  # same E, different payload
    assert seq.check(kline(2000)).kind == "new"
    # Two connections interleaved during a rotation: an older copy arrives after a newer event.
    assert seq.check(kline(1000)).kind == "duplicate"
    assert seq.check(kline(500)).kind == "new"  # never seen: not a duplicate (no gap notion)
    assert seq.last_id == 2000


def test_event_time_streams_without_E_are_new() -> None:
    seq = StreamSequencer("btcusdt@ticker")
    assert seq.check({"s": "BTCUSDT"}).kind == "new"
    assert seq.check({"s": "BTCUSDT"}).kind == "new"


def test_array_stream() -> None:
    seq = StreamSequencer("!miniTicker@arr")
    arr = [{"e": "24hrMiniTicker", "E": 5, "s": "A"}, {"e": "24hrMiniTicker", "E": 5, "s": "B"}]
    assert seq.check(arr).kind == "new"
    assert seq.check(list(arr)).kind == "duplicate"
    assert seq.check(arr[:1]).kind == "new"


def test_reset_forgets_position() -> None:
    seq = StreamSequencer("btcusdt@trade")
    seq.check(trade(5))
    seq.reset()
    assert seq.last_id is None
    assert seq.check(trade(2)).kind == "new"
    k = StreamSequencer("btcusdt@kline_1m")
    k.check(kline(1))
    k.reset()
    assert k.check(kline(1)).kind == "new"


def test_bad_stream_name_and_missing_id() -> None:
    with pytest.raises(StreamNameError):
        StreamSequencer("BTCUSDT@trade")
    with pytest.raises(KeyError):
        StreamSequencer("btcusdt@trade").check({"e": "trade"})


def test_canonical_name_and_event_time_rules() -> None:
    assert StreamSequencer("btcusdt@kline_1m").stream == "btcusdt@kline_1m"
    k = StreamSequencer("btcusdt@ticker")
    assert k.check({"e": "24hrTicker", "E": "x"}) is NEW and k.last_id is None  # a non-int E is no identity
    assert k.check({"e": "24hrTicker", "E": 5}) is NEW and k.last_id == 5
    assert k.check({"e": "24hrTicker", "E": 4, "c": "1"}) is NEW and k.last_id == 5  # never moves back
    assert k.check({"e": "24hrTicker", "E": 4, "c": "1"}) is DUPLICATE


def test_event_time_memory_is_bounded() -> None:
    """Only the 16 most recent payloads are remembered: an old copy passes again, and memory stays flat."""
    k = StreamSequencer("btcusdt@ticker")
    first = {"e": "24hrTicker", "E": 1}
    k.check(first)
    for e in range(2, 18):
        assert k.check({"e": "24hrTicker", "E": e}) is NEW
    assert k.check(first) is NEW  # forgotten (17 payloads later)
    assert k.check({"e": "24hrTicker", "E": 17}) is DUPLICATE  # recent ones are remembered


def test_depth_uses_the_final_update_id() -> None:
    d = StreamSequencer("btcusdt@depth@100ms")
    assert d.check(diff(10, 12)) is NEW and d.last_id == 12
    assert d.check(diff(13, 13)) is NEW and d.last_id == 13


@given(st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=80))
def test_trade_sequencer_property(ids: list[int]) -> None:
    """Over any arrival order: new ids plus reported gaps cover exactly [first, max] once each."""
    seq = StreamSequencer("btcusdt@trade")
    kept: list[int] = []
    missing: list[int] = []
    for i in ids:
        v = seq.check(trade(i))
        if v.kind == "gap":
            assert v.missing_from is not None and v.missing_to is not None
            missing.extend(range(v.missing_from, v.missing_to + 1))
        if v.is_new:
            kept.append(i)
    assert kept == sorted(set(kept))  # strictly increasing: no duplicate ever passes
    assert kept[0] == ids[0]
    assert sorted(kept + missing) == list(range(ids[0], max(ids[0], *ids) + 1))
    assert seq.last_id == kept[-1]


def test_event_time_streams_take_any_payload_shape() -> None:
    k = StreamSequencer("!miniTicker@arr")
    assert k.kind is StreamKind.ALL_MINI_TICKERS and k.stream == "!miniTicker@arr"
    assert k.check([]) is NEW and k.check(5) is NEW and k.check("x") is NEW and k.last_id is None
    assert k.check([{"e": "24hrMiniTicker", "E": 9}]) is NEW and k.last_id == 9
    assert k.check([{"e": "24hrMiniTicker", "E": 9}]) is DUPLICATE
    assert k.check({"e": "x", "e2": 1}) is NEW  # no E: no identity, always kept
