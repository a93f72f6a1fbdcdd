"""Futures local books by the official USD-M procedure: ``pu`` chains, snapshots straddled by the first
event, injected gaps found and rebuilt exactly, books kept across a lost connection proved by ``pu``."""

from __future__ import annotations

import random
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from binance_streamd.futures_book import FuturesBookSync

Truth = tuple[dict[str, str], dict[str, str]]


def stream(n: int, seed: int) -> tuple[list[dict], list[Truth]]:
    """Futures diff events (``U`` jumps, ``pu`` = previous ``u``) and the true book after each."""
    rng = random.Random(seed)
    bids = {f"{100 - i}.00": "1.000" for i in range(1, 11)}
    asks = {f"{100 + i}.00": "1.000" for i in range(1, 11)}
    u = 5000
    events, truths = [], [(dict(bids), dict(asks))]
    for _ in range(n):
        first = u + rng.randint(1, 4)
        last = first + rng.randint(0, 6)
        b = [[f"{100 - rng.randint(1, 12)}.00", str(rng.choice([0, 1, 2, 3]))] for _ in range(rng.randint(0, 3))]
        a = [[f"{100 + rng.randint(1, 12)}.00", str(rng.choice([0, 1, 2, 3]))] for _ in range(rng.randint(0, 3))]
        for side, rows in ((bids, b), (asks, a)):
            for p, q in rows:
                if Decimal(q) == 0:
                    side.pop(p, None)
                else:
                    side[p] = q
        events.append({"e": "depthUpdate", "E": 1, "T": 1, "s": "BTCUSDT", "U": first, "u": last, "pu": u,
                       "b": b, "a": a})
        truths.append((dict(bids), dict(asks)))
        u = last
    return events, truths


def book_of(sync: FuturesBookSync) -> Truth:
    bids, asks = sync.book.top(None)
    return ({p: q for p, q in bids}, {p: q for p, q in asks})


def snapshot(sync: FuturesBookSync, events: list[dict], truths: list[Truth], at: int):  # type: ignore[no-untyped-def]
    """Hand ``sync`` the snapshot true after event ``at`` (``lastUpdateId`` = that event's ``u``)."""
    bids, asks = truths[at + 1]
    return sync.on_snapshot(events[at]["u"], list(bids.items()), list(asks.items()))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), snap_at=st.integers(2, 20), drops=st.sets(st.integers(25, 60), max_size=3))
def test_buffer_snapshot_gaps_and_resyncs_rebuild_the_true_book(seed: int, snap_at: int, drops: set[int]) -> None:
    events, truths = stream(80, seed)
    sync = FuturesBookSync("UM:BTCUSDT")
    for ev in events[: snap_at + 3]:  # buffering: some events older than the snapshot, some newer
        sync.on_diff(ev)
    assert sync.snapshot_requested
    assert snapshot(sync, events, truths, snap_at).changed
    assert sync.state == "live" and book_of(sync) == truths[snap_at + 3]
    missed = False
    for i in range(snap_at + 3, len(events)):
        if i in drops:  # a missed event: the next one's pu does not match
            missed = True
            continue
        res = sync.on_diff(events[i])
        assert res.gap == missed  # found exactly when an event was missed
        if res.gap:
            assert sync.state == "syncing" and res.fetch_snapshot
            assert snapshot(sync, events, truths, i).changed  # a snapshot at the event that showed the gap
        missed = False
        assert sync.state == "live"
        assert book_of(sync) == truths[i + 1]


def test_the_first_event_must_straddle_the_snapshot() -> None:
    events, truths = stream(10, 7)
    sync = FuturesBookSync("UM:BTCUSDT")
    sync.on_diff(events[5])
    sync.on_diff(events[6])
    # a snapshot older than the first buffered event misses updates: fetched again
    res = snapshot(sync, events, truths, 2)
    assert res.fetch_snapshot and sync.state == "syncing"
    res = snapshot(sync, events, truths, 5)  # lastUpdateId = u of event 5: event 5 straddles it (u == L)
    assert res.changed and sync.state == "live" and book_of(sync) == truths[7]


def test_a_kept_book_is_proved_by_pu_after_a_lost_connection() -> None:
    events, truths = stream(20, 3)
    sync = FuturesBookSync("UM:BTCUSDT")
    sync.on_diff(events[0])
    snapshot(sync, events, truths, 0)
    for ev in events[1:8]:
        sync.on_diff(ev)
    assert sync.suspend().changed and sync.state == "verifying"
    assert sync.on_diff(events[8]).changed and sync.state == "live"  # pu == book id: nothing was missed
    assert book_of(sync) == truths[9] and sync.proofs == 1
    sync.suspend()
    res = sync.on_diff(events[11])  # events 9 and 10 were missed while disconnected
    assert res.gap and sync.state == "syncing"


def test_a_book_live_from_a_snapshot_alone_takes_the_next_event_by_pu() -> None:
    """A quiet contract: the snapshot comes with nothing buffered; the next event's U jumps past the snapshot's
    id but its pu is that id, so it continues the book (no false gap, no extra snapshot)."""
    events, truths = stream(12, 11)
    sync = FuturesBookSync("UM:BTCUSDT")
    assert sync.request_snapshot().fetch_snapshot
    snapshot(sync, events, truths, 3)  # the book as of event 3, nothing buffered
    assert sync.state == "live"
    jumped = dict(events[4], U=events[3]["u"] + 3)  # U jumps, pu == lastUpdateId
    assert sync.on_diff(jumped).changed and not sync.on_diff(jumped).gap
    assert book_of(sync) == truths[5] and sync.gaps == 0
    sync.suspend()  # lost the connection before any other diff: the next one proves the book by pu
    assert sync.on_diff(events[5]).changed and sync.state == "live" and sync.proofs == 1
    # a book proved by a snapshot only, then a lost connection, then a diff that does not continue it: a gap,
    # handled (never an exception escaping to the connection)
    other = FuturesBookSync("UM:BTCUSDT")
    other.request_snapshot()
    snapshot(other, events, truths, 3)
    other.suspend()
    res = other.on_diff(events[7])
    assert res.gap and other.state == "syncing"


def test_a_snapshot_only_book_is_proved_after_a_reconnect_by_the_next_events_pu() -> None:
    events, truths = stream(8, 5)
    sync = FuturesBookSync("UM:BTCUSDT")
    sync.request_snapshot()
    snapshot(sync, events, truths, 2)
    sync.suspend()
    res = sync.on_diff(dict(events[3], U=events[2]["u"] + 5))  # pu == the snapshot's id, U jumps past it
    assert res.changed and not res.gap and sync.state == "live" and book_of(sync) == truths[4]


def test_a_book_built_from_a_snapshot_while_down_is_proved_by_its_straddling_first_event() -> None:
    """The snapshot lands while the connection is down: the book waits (verifying); the first event after the
    reconnect straddles the snapshot (its pu is not the snapshot's id), which proves it without a new snapshot."""
    events, truths = stream(20, 5)
    sync = FuturesBookSync("UM:BTCUSDT")
    sync.on_diff(events[3])
    sync.suspend()
    res = snapshot(sync, events, truths, 6)  # lastUpdateId = u of event 6
    assert not res.changed and sync.state == "verifying"
    sync.resumed()
    assert sync.on_diff(events[6]).changed and sync.state == "live"  # straddles: U <= L <= u
    assert sync.resyncs == 0 and book_of(sync) == truths[7]
