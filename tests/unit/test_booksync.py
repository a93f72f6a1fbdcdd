"""BookSync's continuity after a lost connection (verifying), its counters and results exactly, and LocalBook's
edges: numeric levels, error messages, initial state. Pure, no event loop."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from binance_streamd.orderbook import BookGap, BookSync, LocalBook, SyncResult

SNAP_B = [["0.0024", "10"]]
SNAP_A = [["0.0026", "100"]]


def diff(U: int, u: int, b=(), a=(), E: int = 1000) -> dict:
    return {"e": "depthUpdate", "E": E, "s": "X", "U": U, "u": u, "b": [list(x) for x in b],
            "a": [list(x) for x in a]}


def live(last_id: int = 10) -> BookSync:
    s = BookSync("x")
    s.on_diff(diff(last_id, last_id), 1)
    assert s.on_snapshot(last_id, SNAP_B, SNAP_A) == SyncResult(changed=True)
    assert s.state == "live" and s.book.last_update_id == last_id
    return s


# --- LocalBook ------------------------------------------------------------------------------------------

def test_a_new_book_is_empty_and_refuses_diffs_until_a_snapshot() -> None:
    b = LocalBook("btcusdt")
    assert (b.symbol, b.last_update_id, b.last_event_time, b.has_snapshot) == ("BTCUSDT", -1, None, False)
    assert b.top() == ([], []) and b.depth() == (0, 0)
    with pytest.raises(RuntimeError, match="BTCUSDT: apply_snapshot must come before apply_diff"):
        b.apply_diff(diff(1, 1))


def test_nothing_past_the_edge_of_a_snapshot_that_stopped_at_its_limit_is_served() -> None:
    b = LocalBook("x")
    b.apply_snapshot(10, [["10", "1"], ["9", "1"], ["8", "1"]], [["11", "1"]], limit=3)  # bids full, asks whole
    b.apply_diff(diff(11, 11, b=[("10", "0"), ("9", "0"), ("7", "5")], a=[("15", "2")]))
    assert b.top(5) == ([["8", "1"]], [["11", "1"], ["15", "2"]])  # 7 lies past the edge (8): unknown around it
    assert b.short_of(2) and not b.short_of(1)
    b.apply_diff(diff(12, 12, b=[("9.5", "3")]))  # inside the edge: known
    assert b.top(None)[0] == [["9.5", "3"], ["8", "1"]]
    whole = LocalBook("x")
    whole.apply_snapshot(10, [["10", "1"]], [["11", "1"]], limit=3)  # fewer than asked: the whole book
    whole.apply_diff(diff(11, 11, b=[("10", "0"), ("7", "5")]))
    assert whole.top(5)[0] == [["7", "5"]] and not whole.short_of(5)


def test_a_live_book_whose_known_levels_run_short_takes_a_new_snapshot() -> None:
    s = BookSync("x", keep_levels=2, snapshot_limit=3)
    s.on_diff(diff(10, 10), 1)
    s.on_snapshot(10, [["10", "1"], ["9", "1"], ["8", "1"]], [["11", "1"]])
    assert s.state == "live"
    assert s.on_diff(diff(11, 11, b=[("10", "0")]), 2) == SyncResult(changed=True)  # 2 known: enough
    res = s.on_diff(diff(12, 12, b=[("9", "0")]), 3)
    assert res == SyncResult(fetch_snapshot=True, gap=True, refresh=True) and s.state == "syncing"
    assert s.refreshes == 1 and s.gaps == 0
    assert s.on_snapshot(12, [["8", "1"], ["7", "1"], ["6", "1"]], [["11", "1"]]) == SyncResult(changed=True)
    assert s.book.top(None)[0] == [["8", "1"], ["7", "1"], ["6", "1"]]


def test_numeric_levels_are_kept_as_their_text() -> None:
    b = LocalBook("x")
    b.apply_snapshot(5, [[Decimal("10.50"), 2], [9, Decimal("1.0")]], [["11", "3"]])
    assert b.top() == ([["10.50", "2"], ["9", "1.0"]], [["11", "3"]])
    b.apply_diff({"U": 6, "u": 6, "b": [[Decimal("10.50"), 0]], "a": [[11, Decimal("0E-8")]]})
    assert b.top() == ([["9", "1.0"]], [])


def test_bad_levels_name_the_level() -> None:
    b = LocalBook("x")
    with pytest.raises(ValueError, match=r"bad price level \['abc', '1'\]"):
        b.apply_snapshot(1, [["abc", "1"]], [])
    with pytest.raises(ValueError, match=r"bad price level \['NaN', '1'\]"):
        b.apply_snapshot(1, [["NaN", "1"]], [])
    with pytest.raises(ValueError, match=r"bad price level \['1', 'x'\]"):
        b.apply_snapshot(1, [["1", "x"]], [])
    assert not b.has_snapshot


def test_sides_are_ordered_best_first_and_top_n_cuts() -> None:
    b = LocalBook("x")
    b.apply_snapshot(1, [["9", "1"], ["10", "1"], ["8.5", "1"]], [["12", "1"], ["11", "1"], ["13.5", "1"]])
    assert [p for p, _ in b.top()[0]] == ["10", "9", "8.5"] and [p for p, _ in b.top()[1]] == ["11", "12", "13.5"]
    assert b.top(2) == ([["10", "1"], ["9", "1"]], [["11", "1"], ["12", "1"]])
    b.apply_diff(diff(2, 2, b=[("10", "0")], a=[("11", "0")]))
    assert b.top(1) == ([["9", "1"]], [["12", "1"]])


def test_a_gap_message_names_what_was_missed() -> None:
    b = LocalBook("x")
    b.apply_snapshot(10, [], [])
    with pytest.raises(BookGap, match=r"X: depth diff starts at U=15, expected <= 11; missed updates") as ei:
        b.apply_diff(diff(15, 16))
    assert (ei.value.symbol, ei.value.expected, ei.value.got) == ("X", 11, 15)


# --- BookSync: construction, counters, results -------------------------------------------------------------

def test_construction() -> None:
    with pytest.raises(ValueError, match="max_buffer must be at least 1"):
        BookSync("x", max_buffer=0)
    s = BookSync("x", max_buffer=1)
    assert s.state == "syncing" and not s.snapshot_requested and s.last_recv_ms is None
    assert isinstance(s.book, LocalBook) and s.book.symbol == "X"
    assert s.status() == {"state": "syncing", "lastUpdateId": None, "E": None, "buffered": 0, "resyncs": 0,
                          "gaps": 0, "snapshots": 0, "stale_snapshots": 0, "proofs": 0}
    s.on_diff(diff(1, 1), 1)
    s.on_diff(diff(2, 2), 2)
    assert s.first_buffered_id == 2  # max_buffer=1 keeps only the newest


def test_counters_accumulate() -> None:
    s = live(10)
    s.on_diff(diff(20, 21), 2)  # gap 1
    s.on_snapshot(21, SNAP_B, SNAP_A)
    s.on_diff(diff(30, 31), 3)  # gap 2
    assert (s.gaps, s.resyncs) == (2, 2)
    s.on_diff(diff(40, 40), 4)  # a hole inside the buffer
    assert s.gaps == 3
    s.on_snapshot(1, SNAP_B, SNAP_A)  # older than the first buffered diff
    s.on_snapshot(2, SNAP_B, SNAP_A)
    assert s.stale_snapshots == 2 and s.snapshot_requested


def test_status_reports_the_live_book_only() -> None:
    s = live(10)
    s.on_diff(diff(11, 11, E=777), 5)
    st = s.status()
    assert st["state"] == "live" and st["lastUpdateId"] == 11 and st["E"] == 777 and st["snapshots"] == 1
    s.suspend()
    st = s.status()
    assert st["state"] == "verifying" and st["lastUpdateId"] is None and st["E"] is None


def test_the_buffer_drops_duplicates_by_final_id_and_restarts_at_a_one_id_hole() -> None:
    s = BookSync("x")
    s.on_diff(diff(10, 12), 1)
    assert s.on_diff(diff(11, 12), 2) == SyncResult()  # same u: a duplicate
    assert len(s.buffer) == 1
    s.on_diff(diff(12, 14), 3)  # overlaps (U <= last u) but newer: kept
    assert len(s.buffer) == 2
    s.on_diff(diff(16, 16), 4)  # 15 is missing: exactly one id
    assert s.gaps == 1 and s.first_buffered_id == 16


def test_a_snapshot_with_nothing_buffered_goes_live_without_a_receive_time() -> None:
    s = BookSync("x")
    assert s.request_snapshot() == SyncResult(fetch_snapshot=True)
    assert s.request_snapshot() == SyncResult()  # already asked
    assert s.on_snapshot(50, SNAP_B, SNAP_A) == SyncResult(changed=True)
    assert s.state == "live" and s.last_recv_ms is None and s.book.last_update_id == 50
    assert s.request_snapshot() == SyncResult()  # live: nothing to ask


def test_a_gap_while_live_keeps_the_diff_and_its_receive_time() -> None:
    s = live(10)
    res = s.on_diff(diff(15, 16, b=[("0.0030", "1")]), 99)
    assert res == SyncResult(fetch_snapshot=True, gap=True)
    assert s.buffer[0] == (diff(15, 16, b=[("0.0030", "1")]), 99)
    s.on_snapshot(15, SNAP_B, SNAP_A)
    assert s.state == "live" and s.last_recv_ms == 99 and s.book.top()[0][0] == ["0.0030", "1"]


def test_a_malformed_diff_is_logged_with_its_id(caplog: pytest.LogCaptureFixture) -> None:
    s = live(10)
    with caplog.at_level(logging.WARNING):
        s.on_diff(diff(11, 42, b=[("x", "1")]), 2)
    assert "X: malformed depth diff 42; resyncing" in caplog.text
    s.on_diff(diff(50, 50), 3)
    with caplog.at_level(logging.WARNING):
        s.buffer.append((diff(51, 51, b=[("bad", "1")]), 4))
        assert s.on_snapshot(50, SNAP_B, SNAP_A) == SyncResult(gap=True)
    assert "X: malformed buffered depth diff; starting over" in caplog.text


def test_snapshot_failed_and_reset_clear_the_request() -> None:
    s = BookSync("x")
    s.on_diff(diff(1, 1), 1)
    assert s.snapshot_requested is True
    s.snapshot_failed()
    assert s.snapshot_requested is False
    s.on_diff(diff(2, 2), 2)
    s.reset()
    assert s.snapshot_requested is False and s.state == "syncing"


# --- BookSync: verifying after a lost connection -------------------------------------------------------

def test_suspend_only_affects_a_live_book() -> None:
    s = BookSync("x")
    assert s.suspend() == SyncResult() and s.state == "syncing"
    s = live(10)
    assert s.suspend() == SyncResult(changed=True) and s.state == "verifying"
    assert s.suspend() == SyncResult() and s.state == "verifying"
    assert s.book.last_update_id == 10  # the book is kept


def test_the_first_continuous_diff_proves_the_kept_book() -> None:
    s = live(10)
    s.suspend()
    assert s.on_diff(diff(5, 10), 1) == SyncResult() and s.state == "verifying"  # older: proves nothing
    assert s.on_diff(diff(9, 12, b=[("0.0025", "3")]), 7) == SyncResult(changed=True)
    assert s.state == "live" and s.proofs == 1 and s.last_recv_ms == 7 and s.book.last_update_id == 12
    assert s.book.top()[0][0] == ["0.0025", "3"] and s.resyncs == 0 and s.snapshots == 1
    s.suspend()
    s.on_diff(diff(13, 13), 8)
    assert s.proofs == 2


def test_a_gap_after_the_reconnect_resyncs_from_that_diff() -> None:
    s = live(10)
    s.suspend()
    res = s.on_diff(diff(12, 13), 5)  # 11 was missed while disconnected
    assert res == SyncResult(fetch_snapshot=True, gap=True)
    assert s.state == "syncing" and s.gaps == 1 and s.resyncs == 1 and s.proofs == 0
    assert s.buffer[0] == (diff(12, 13), 5) and s.book.last_update_id == -1


def test_a_malformed_first_diff_after_the_reconnect_resyncs() -> None:
    s = live(10)
    s.suspend()
    assert s.on_diff(diff(11, 11, b=[("x", "1")]), 5) == SyncResult(gap=True)
    assert s.state == "syncing" and s.resyncs == 1 and not s.buffer


def test_a_quiet_book_is_proved_or_replaced_by_a_snapshot() -> None:
    s = live(10)
    s.suspend()
    s.resumed()  # the depth stream is acknowledged again (the manager's subscribed())
    assert s.request_snapshot() == SyncResult(fetch_snapshot=True)
    res = s.on_snapshot(9, SNAP_B, SNAP_A)  # lagging REST: proves nothing, ask again
    assert res == SyncResult(fetch_snapshot=True) and s.state == "verifying" and s.stale_snapshots == 1
    assert s.snapshot_requested is True
    res = s.on_snapshot(10, [["1", "1"]], [["2", "2"]])  # the same update id: current; replaced
    assert res == SyncResult(changed=True) and s.state == "live" and s.book.top() == ([["1", "1"]], [["2", "2"]])
    s.suspend()
    s.resumed()
    s.request_snapshot()
    assert s.on_snapshot(20, [["3", "1"]], []) == SyncResult(changed=True)  # missed updates: the snapshot wins
    assert s.state == "live" and s.book.last_update_id == 20 and s.last_recv_ms is None


def test_a_snapshot_that_lands_while_the_stream_is_down_does_not_make_a_live_book() -> None:
    """A resync's snapshot arriving after the connection dropped: nothing keeps that book current, so it
    waits (verifying) for the new connection's first diff to prove it, or shows the gap."""
    s = BookSync("BTCUSDT")
    assert s.on_diff(diff(11, 12), 1).fetch_snapshot  # syncing, snapshot asked
    s.suspend()  # the connection drops before the snapshot comes
    assert s.on_snapshot(12, SNAP_B, SNAP_A) == SyncResult() and s.state == "verifying"
    s.resumed()
    assert s.on_diff(diff(13, 14), 2) == SyncResult(changed=True) and s.state == "live"  # continuous: proved
    s.suspend()
    s.request_snapshot()
    assert s.on_snapshot(30, SNAP_B, SNAP_A) == SyncResult() and s.state == "verifying"  # kept book, still down
    s.resumed()
    res = s.on_diff(diff(40, 41), 3)  # the first diff after the outage skips 31..39: a gap, not a live book
    assert res.gap and s.state == "syncing"


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_every_counter_accumulates_and_live_diffs_record_their_receive_time(
        caplog: pytest.LogCaptureFixture) -> None:
    s = live(10)
    assert s.snapshot_requested is False
    s.on_diff(diff(11, 11), 42)
    assert s.last_recv_ms == 42
    with caplog.at_level(logging.WARNING):
        for _ in range(2):  # malformed while live, twice
            s.on_diff(diff(12, 12, b=[("x", "1")]), 1)
            s.on_diff(diff(12, 12), 1)
            s.on_snapshot(12, SNAP_B, SNAP_A)
    assert s.resyncs == 2
    assert "X: malformed depth diff 12; resyncing" in _messages(caplog)
    for n in (1, 2):  # a gap after a reconnect, twice
        s.suspend()
        s.on_diff(diff(s.book.last_update_id + 5, s.book.last_update_id + 5), 1)
        assert (s.gaps, s.resyncs) == (n, 2 + n)
        s.on_snapshot(s.buffer[0][0]["u"], SNAP_B, SNAP_A)
    for n in (1, 2):  # malformed first diff after a reconnect, twice
        s.suspend()
        s.on_diff(diff(s.book.last_update_id + 1, s.book.last_update_id + 1, b=[("x", "1")]), 1)
        assert s.resyncs == 4 + n
        s.request_snapshot()
        s.on_snapshot(100 * n, SNAP_B, SNAP_A)
    s.suspend()
    s.request_snapshot()
    s.on_snapshot(1, SNAP_B, SNAP_A)
    s.on_snapshot(2, SNAP_B, SNAP_A)  # lagging twice while verifying
    assert s.stale_snapshots == 2


def test_a_malformed_buffered_diff_counts_a_gap_each_time(caplog: pytest.LogCaptureFixture) -> None:
    s = BookSync("x")
    with caplog.at_level(logging.WARNING):
        for n in (1, 2):
            s.on_diff(diff(50, 50, b=[("bad", "1")]), 1)
            assert s.on_snapshot(49, SNAP_B, SNAP_A) == SyncResult(gap=True)
            assert s.gaps == n
    assert _messages(caplog).count("X: malformed buffered depth diff; starting over") == 2


def test_construction_message_is_exact() -> None:
    with pytest.raises(ValueError) as ei:
        BookSync("x", max_buffer=0)
    assert str(ei.value) == "max_buffer must be at least 1"
