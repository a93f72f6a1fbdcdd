"""LocalBook and BookSync: the official local-order-book procedure, pure and without an event loop."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from binance_common.feedstore import decode_book
from binance_streamd.orderbook import BookGap, BookSync, LocalBook, SyncResult


def diff(U: int, u: int, b=(), a=(), E: int = 1000, s: str = "BNBBTC") -> dict:
    return {"e": "depthUpdate", "E": E, "s": s, "U": U, "u": u, "b": [list(x) for x in b],
            "a": [list(x) for x in a]}


def book_with(last_id: int = 100, bids=(("0.0024", "10"),), asks=(("0.0026", "100"),)) -> LocalBook:
    book = LocalBook("bnbbtc")
    book.apply_snapshot(last_id, [list(x) for x in bids], [list(x) for x in asks])
    return book


# --- LocalBook ---------------------------------------------------------------------------------------

def test_snapshot_then_diff_official_example() -> None:
    book = LocalBook("BNBBTC")
    book.apply_snapshot(160, [["0.0024", "10"]], [["0.0026", "100"]])
    assert book.last_update_id == 160 and book.last_event_time is None
    assert book.apply_diff(diff(157, 160, b=[("0.0024", "11")])) is True  # u == id: applied (not < id)
    assert book.apply_diff(diff(161, 162, b=[("0.0023", "5")], a=[("0.0026", "0")], E=77)) is True
    assert book.last_update_id == 162 and book.last_event_time == 77
    assert book.top(10) == ([["0.0024", "11"], ["0.0023", "5"]], [])


def test_stale_diff_ignored() -> None:
    book = book_with(100)
    assert book.apply_diff(diff(90, 99, b=[("0.0024", "999")])) is False
    assert book.top(1)[0] == [["0.0024", "10"]]
    assert book.last_update_id == 100


def test_gap_raises_and_leaves_book() -> None:
    book = book_with(100)
    with pytest.raises(BookGap) as ei:
        book.apply_diff(diff(102, 103, b=[("0.0024", "999")]))
    assert ei.value.expected == 101 and ei.value.got == 102 and ei.value.symbol == "BNBBTC"
    assert book.top(1)[0] == [["0.0024", "10"]]


def test_diff_before_snapshot_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        LocalBook("X").apply_diff(diff(1, 1))


def test_any_zero_quantity_removes_and_unknown_removal_is_harmless() -> None:
    book = book_with(1, bids=[("1.0", "1"), ("2.0", "1"), ("3.0", "1")])
    book.apply_diff(diff(2, 2, b=[("1.0", "0"), ("2.0", "0.00000000"), ("9.0", "0.0")]))
    assert book.top(10)[0] == [["3.0", "1"]]
    assert book.depth() == (1, 1)


def test_decimal_ordering_and_scales() -> None:
    # "0.1000" and "0.10" are the same level; "0.9" > "0.10" numerically though not as strings.
    book = LocalBook("X")
    book.apply_snapshot(1, [["0.10", "1"], ["0.9", "2"], ["0.095", "3"], ["10", "4"]],
                       [["1.5000", "1"], ["1.05", "1"], ["12", "1"], ["2", "1"]])
    bids, asks = book.top(10)
    assert [p for p, _ in bids] == ["10", "0.9", "0.10", "0.095"]
    assert [p for p, _ in asks] == ["1.05", "1.5000", "2", "12"]
    book.apply_diff(diff(2, 2, b=[("0.1000", "7.50")]))
    bids, _ = book.top(10)
    assert ["0.1000", "7.50"] in bids and len(bids) == 4  # one level; strings as last sent
    book.apply_diff(diff(3, 3, b=[("0.100000", "0")]))
    assert [p for p, _ in book.top(10)[0]] == ["10", "0.9", "0.095"]


def test_strings_kept_verbatim_and_top_n() -> None:
    book = LocalBook("X")
    book.apply_snapshot(5, [["0.35210000", "672.00000000"], ["0.35200000", "1144.00000000"]],
                       [["0.35290000", "10968.00000000"]])
    assert book.top(1) == ([["0.35210000", "672.00000000"]], [["0.35290000", "10968.00000000"]])
    assert book.top(0) == ([], [])
    assert len(book.top(None)[0]) == 2


def test_snapshot_replaces_everything_and_skips_zero_levels() -> None:
    book = book_with(10, bids=[("1", "1"), ("2", "1")])
    book.apply_snapshot(20, [["3", "1"], ["4", "0"]], [])
    assert book.top(10) == ([["3", "1"]], []) and book.last_update_id == 20


def test_malformed_level_changes_nothing() -> None:
    book = book_with(1)
    with pytest.raises(ValueError):
        book.apply_diff(diff(2, 2, b=[("0.5", "1")], a=[("abc", "1")]))
    with pytest.raises(ValueError):
        book.apply_diff(diff(2, 2, b=[("NaN", "1")]))
    assert book.last_update_id == 1 and book.depth() == (1, 1)


def test_to_json_layout() -> None:
    book = book_with(100, bids=[("1.0", "1"), ("0.9", "2")], asks=[("1.1", "3")])
    book.apply_diff(diff(101, 101, E=1633998512068))
    raw = book.to_json(1, 1633998512100, since=1633998500000)
    value = orjson.loads(raw)
    assert value == {"symbol": "BNBBTC", "state": "live", "since": 1633998500000, "lastUpdateId": 101,
                     "E": 1633998512068, "asof": 1633998512100, "bids": [["1.0", "1"]], "asks": [["1.1", "3"]]}
    assert list(value) == ["symbol", "state", "since", "lastUpdateId", "E", "asof", "bids", "asks"]
    decoded = decode_book(raw)
    assert decoded is not None and decoded.live and decoded.bids == [["1.0", "1"]]


# --- BookSync -----------------------------------------------------------------------------------------

SNAP_B = [["0.0024", "10"]]
SNAP_A = [["0.0026", "100"]]


def test_sync_happy_path_drops_stale_buffered_diffs() -> None:
    s = BookSync("bnbbtc")
    assert s.state == "syncing"
    assert s.on_diff(diff(157, 158, b=[("0.0001", "1")]), 1) == SyncResult(fetch_snapshot=True)
    assert s.on_diff(diff(159, 160, b=[("0.0002", "1")]), 2) == SyncResult()  # already requested
    assert s.on_diff(diff(161, 163, b=[("0.0024", "0")]), 3) == SyncResult()
    assert s.first_buffered_id == 157
    res = s.on_snapshot(160, SNAP_B, SNAP_A)
    assert res == SyncResult(changed=True)
    assert s.state == "live" and s.book.last_update_id == 163 and s.last_recv_ms == 3
    # The two diffs with u <= 160 were dropped (their levels are not in the book); 161..163 applied.
    assert s.book.top(10) == ([], [["0.0026", "100"]])
    assert s.on_diff(diff(164, 164, a=[("0.0027", "1")]), 4) == SyncResult(changed=True)
    assert s.on_diff(diff(160, 162), 5) == SyncResult()  # stale: ignored
    assert s.status()["lastUpdateId"] == 164


def test_sync_first_kept_event_is_exact_continuation() -> None:
    """lastUpdateId + 1 == U of the first kept diff (the common case, seen in the real recording)."""
    s = BookSync("X")
    s.on_diff(diff(150, 152), 1)
    s.on_diff(diff(153, 154, b=[("1", "1")]), 2)
    assert s.on_snapshot(152, SNAP_B, SNAP_A).changed
    assert s.book.last_update_id == 154 and ["1", "1"] in s.book.top(5)[0]


def test_sync_snapshot_too_old_is_fetched_again() -> None:
    s = BookSync("X")
    s.on_diff(diff(200, 201), 1)
    res = s.on_snapshot(198, SNAP_B, SNAP_A)  # lastUpdateId < first U: updates 199 missing
    assert res == SyncResult(fetch_snapshot=True)
    assert s.state == "syncing" and s.stale_snapshots == 1 and s.snapshot_requested
    assert s.on_diff(diff(202, 202), 2) == SyncResult()  # a fetch is still pending: no second request
    assert s.on_snapshot(201, SNAP_B, SNAP_A).changed
    assert s.book.last_update_id == 202 and s.snapshots == 2


def test_sync_snapshot_ending_right_before_first_buffered_diff_is_used() -> None:
    s = BookSync("X")
    s.on_diff(diff(11, 12, b=[("1", "1")]), 1)
    assert s.on_snapshot(10, SNAP_B, SNAP_A) == SyncResult(changed=True)
    assert s.book.last_update_id == 12 and s.stale_snapshots == 0


def test_sync_snapshot_newer_than_every_buffered_diff() -> None:
    s = BookSync("X")
    s.on_diff(diff(10, 12), 1)
    assert s.on_snapshot(20, SNAP_B, SNAP_A).changed  # all buffered diffs dropped
    assert s.book.last_update_id == 20
    assert s.on_diff(diff(15, 19), 2) == SyncResult()  # still older: ignored
    assert s.on_diff(diff(18, 21, b=[("1", "2")]), 3).changed  # straddles 21: applied
    res = s.on_diff(diff(23, 24), 4)  # 22 missing
    assert res.gap and res.fetch_snapshot and s.state == "syncing" and s.resyncs == 1


def test_sync_first_event_must_contain_next_id() -> None:
    """A buffer that does not reach lastUpdateId + 1 is refused; the snapshot is fetched again."""
    s = BookSync("X")
    s.on_diff(diff(10, 12), 1)
    s.buffer.append((diff(15, 16), 2))  # a buffer with a hole (cannot be built through on_diff)
    res = s.on_snapshot(12, SNAP_B, SNAP_A)
    assert res == SyncResult(gap=True)  # nothing usable: the next diff starts a new sync
    assert s.state == "syncing" and s.gaps == 1 and not s.buffer and not s.snapshot_requested


def test_sync_gap_while_live_restarts_from_that_event() -> None:
    s = BookSync("X")
    s.on_diff(diff(1, 1), 1)
    s.on_snapshot(1, SNAP_B, SNAP_A)
    res = s.on_diff(diff(5, 6), 2)
    assert res == SyncResult(fetch_snapshot=True, gap=True)
    assert s.state == "syncing" and s.gaps == 1 and s.resyncs == 1
    assert s.first_buffered_id == 5  # the event that showed the gap starts the new buffer
    assert s.status()["lastUpdateId"] is None
    s.on_diff(diff(7, 7, b=[("2", "2")]), 3)
    assert s.on_snapshot(6, [["1", "1"]], []).changed
    assert s.book.top(5)[0] == [["2", "2"], ["1", "1"]] and s.book.last_update_id == 7


def test_sync_gap_inside_buffer_restarts_buffering() -> None:
    s = BookSync("X")
    s.on_diff(diff(10, 11), 1)
    s.on_diff(diff(11, 11), 2)  # duplicate while buffering: dropped
    assert len(s.buffer) == 1
    s.on_diff(diff(14, 15), 3)  # 12..13 missing
    assert s.gaps == 1 and s.first_buffered_id == 14 and len(s.buffer) == 1
    res = s.on_snapshot(12, SNAP_B, SNAP_A)  # 13 missing before the new first U: too old
    assert res.fetch_snapshot and s.stale_snapshots == 1


def test_sync_buffer_is_bounded() -> None:
    s = BookSync("X", max_buffer=3)
    for i in range(10, 20):
        s.on_diff(diff(i, i), i)
    assert len(s.buffer) == 3 and s.first_buffered_id == 17
    assert s.on_snapshot(15, SNAP_B, SNAP_A).fetch_snapshot  # older than what is still buffered
    assert s.on_snapshot(16, SNAP_B, SNAP_A).changed  # ends right before the first buffered diff
    assert s.book.last_update_id == 19


def test_sync_snapshot_failed_and_reset() -> None:
    s = BookSync("X")
    assert s.on_diff(diff(1, 1), 1).fetch_snapshot
    s.snapshot_failed()
    assert s.on_diff(diff(2, 2), 2).fetch_snapshot  # asks again
    s.on_snapshot(2, SNAP_B, SNAP_A)
    assert s.on_snapshot(5, [], []) == SyncResult()  # unsolicited while live: ignored
    s.reset()
    assert s.state == "syncing" and not s.buffer and not s.snapshot_requested
    assert s.on_diff(diff(9, 9), 3).fetch_snapshot


def test_sync_malformed_diff_while_live_resyncs() -> None:
    s = BookSync("X")
    s.on_diff(diff(1, 1), 1)
    s.on_snapshot(1, SNAP_B, SNAP_A)
    res = s.on_diff(diff(2, 2, b=[("x", "1")]), 2)
    assert res.gap and s.state == "syncing" and s.resyncs == 1
    assert s.on_diff(diff(3, 3), 3).fetch_snapshot


# --- property: LocalBook equals a naive dict reconstruction --------------------------------------------

PRICES = ["0.1", "0.10", "0.1000", "0.2", "0.25", "1", "1.0", "1.00000000", "2.5", "10", "0.09"]
QTYS = ["0", "0.000", "1", "1.50", "2", "0.00000001", "100.00000000"]
level = st.tuples(st.sampled_from(PRICES), st.sampled_from(QTYS))
side = st.lists(level, max_size=6)


def naive(snapshot: tuple[list, list], diffs: list[tuple[list, list]]) -> tuple[list, list]:
    bids: dict[Decimal, tuple[str, str]] = {}
    asks: dict[Decimal, tuple[str, str]] = {}
    for levels, target in ((snapshot[0], bids), (snapshot[1], asks)):
        for p, q in levels:
            target[Decimal(p)] = (p, q)
    for b, a in diffs:
        for levels, target in ((b, bids), (a, asks)):
            for p, q in levels:
                target[Decimal(p)] = (p, q)
    out = []
    for target, rev in ((bids, True), (asks, False)):
        kept = {k: v for k, v in target.items() if Decimal(v[1]) != 0}
        out.append([list(kept[k]) for k in sorted(kept, reverse=rev)])
    return out[0], out[1]


@given(snap_b=side, snap_a=side, diffs=st.lists(st.tuples(side, side), max_size=25),
       n=st.integers(min_value=1, max_value=12))
def test_property_matches_naive_reconstruction(snap_b, snap_a, diffs, n) -> None:
    book = LocalBook("X")
    book.apply_snapshot(0, [list(x) for x in snap_b], [list(x) for x in snap_a])
    for i, (b, a) in enumerate(diffs, start=1):
        assert book.apply_diff(diff(i, i, b=b, a=a))
    bids, asks = naive((snap_b, snap_a), diffs)
    assert book.top(None) == (bids, asks)
    assert book.top(n) == (bids[:n], asks[:n])


@given(
    first=st.integers(min_value=1, max_value=50),
    sizes=st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=30),
    snap_at=st.integers(min_value=0, max_value=120),
)
def test_property_sync_from_any_snapshot_point(first, sizes, snap_at) -> None:
    """Whatever id the snapshot was taken at, BookSync ends on the last u or asks for another snapshot."""
    s = BookSync("X")
    U = first
    for k, size in enumerate(sizes):
        s.on_diff(diff(U, U + size - 1, b=[(str(k), "1")]), k)
        U += size
    last_u = U - 1
    res = s.on_snapshot(snap_at, [], [])
    if snap_at + 1 < first:
        assert res.fetch_snapshot and s.state == "syncing"
    else:
        assert res.changed and s.state == "live"
        assert s.book.last_update_id == max(last_u, snap_at)
