"""DataPath: the continuity of trade streams without sockets or Redis. A fake writer records what would be
written, a fake venue answers the catch-ups; each test drives acknowledgements, drops and frames by hand."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from binance_common.feedstore import StreamState
from binance_common.streams import StreamKind
from binance_streamd.datapath import DataPath
from binance_streamd.writer import BACKFILL, GAP, LIVE
from tests.unit.test_catchup import FakeVenue


class FakeWriter:
    def __init__(self) -> None:
        self.rows: list[tuple[str, Any, int]] = []  # (stream, decoded payload, kind)
        self.pending: list[tuple[str, bytes, int, int]] = []  # nothing is ever waiting for Redis here

    def add(self, stream: str, payload: bytes, recv_ms: int, kind: int = LIVE) -> None:
        self.rows.append((stream, orjson.loads(payload), kind))

    async def writable(self) -> None:
        return None  # this writer always takes writes

    def ids(self, stream: str) -> list[int]:
        out = []
        for s, p, kind in self.rows:
            if s == stream:
                out.append(p["to"] if kind == GAP else p["a" if "aggTrade" in s else "t"])
        return out


class FakeQueue:
    def __init__(self, venue: FakeVenue) -> None:
        self.venue = venue
        self.gate: asyncio.Event | None = None

    async def get(self, priority: Any, path: str, params: dict[str, Any]) -> Any:
        if self.gate is not None:
            await self.gate.wait()
        return await self.venue.get(path, params)


class Conn:
    id = 7


def agg(i: int) -> bytes:
    return orjson.dumps({"e": "aggTrade", "E": i, "s": "NKNUSDT", "a": i, "p": "1", "q": "1", "f": i, "l": i,
                         "T": i, "m": False, "M": True})


def make(venue: FakeVenue | None = None, max_ids: int = 20_000) -> tuple[DataPath, FakeWriter, FakeQueue]:
    w, q = FakeWriter(), FakeQueue(venue or FakeVenue(last=5000))
    dp = DataPath({}, w, q, max_ids=max_ids)  # type: ignore[arg-type]
    return dp, w, q


def stream(dp: DataPath, name: str = "nknusdt@aggTrade") -> Any:
    st = dp.new_stream(name, StreamKind.AGG_TRADE if "aggTrade" in name else StreamKind.TRADE)
    dp.states[name] = st
    return st


async def settle(st: Any, timeout_s: float = 5.0) -> None:
    """Until the stream's fill task has finished (no fill running, none asked for), within a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (st.fill_task is not None and not st.fill_task.done()) or (st.fill_wanted and st.acked):
        assert loop.time() < deadline, f"{st.name}: the fill did not finish within {timeout_s} s"
        await asyncio.sleep(0)


async def test_a_new_stream_holds_until_its_first_ack_and_then_starts_its_history_there() -> None:
    dp, w, _ = make()
    st = stream(dp)
    assert st.held is not None and list(st.held) == [] and st.fill_wanted and st.state is StreamState.PENDING
    dp.on_data(Conn(), st.name, agg(10), 1)  # before the ack is processed
    assert w.rows == [] and len(st.held) == 1
    assert dp.acknowledged(st, 7) is True  # first ack recorded: nothing to catch up before it
    assert st.first_ack > 0 and st.held is None and st.fill_task is None and st.state is StreamState.LIVE
    assert w.ids(st.name) == [10] and w.rows[0][2] == LIVE
    dp.on_data(Conn(), st.name, agg(11), 2)
    assert w.ids(st.name) == [10, 11] and st.msgs == 2 and st.last_event == 11 and st.conn == 7


async def test_a_drop_is_caught_up_at_the_ack_without_a_later_trade() -> None:
    dp, w, _ = make(FakeVenue(last=4990))
    st = stream(dp)
    dp.acknowledged(st, 7)
    dp.on_data(Conn(), st.name, agg(4980), 1)
    dp.lost(st, "closed by server (1001)")
    assert st.state is StreamState.PENDING and st.reason == "reconnecting: closed by server (1001)"
    assert st.reconnects == 1 and st.held is not None and list(st.held) == [] and not st.acked
    assert dp.acknowledged(st, 8) is False  # a stream with an id: no first-ack bookkeeping
    assert st.state is StreamState.CATCHING_UP
    await settle(st)
    assert w.ids(st.name) == list(range(4980, 4991)) and {k for _, _, k in w.rows[1:]} == {BACKFILL}
    assert st.state is StreamState.LIVE and st.gaps_found == 1 and st.gaps_filled == 1 and st.ids_missing == 10
    assert dp.fills == 1


async def test_live_messages_during_a_catch_up_follow_it_in_id_order() -> None:
    dp, w, q = make(FakeVenue(last=4990))
    st = stream(dp)
    dp.acknowledged(st, 7)
    dp.on_data(Conn(), st.name, agg(4980), 1)
    dp.lost(st, "")
    q.gate = asyncio.Event()
    dp.acknowledged(st, 8)
    for i in (4989, 4990, 4991, 4992):  # arrive while REST is slow; 4989..4990 are also in REST
        dp.on_data(Conn(), st.name, agg(i), 5)
    assert w.ids(st.name) == [4980]
    q.gate.set()
    await settle(st)
    assert w.ids(st.name) == list(range(4980, 4993)) and st.dups == 2 and st.state is StreamState.LIVE


async def test_a_gap_in_live_data_holds_the_message_behind_a_backfill() -> None:
    dp, w, _ = make(FakeVenue(last=5000))
    st = stream(dp)
    dp.acknowledged(st, 7)
    dp.on_data(Conn(), st.name, agg(100), 1)
    dp.on_data(Conn(), st.name, agg(105), 2)  # 101..104 missing
    assert st.gaps_found == 1 and st.ids_missing == 4 and st.fill_until == 104 and st.fill_task is not None
    dp.on_data(Conn(), st.name, agg(106), 3)
    await settle(st)
    assert w.ids(st.name) == list(range(100, 107))
    assert [k for _, _, k in w.rows] == [LIVE, BACKFILL, BACKFILL, BACKFILL, BACKFILL, LIVE, LIVE]
    assert st.gaps_filled == 1 and st.gaps_unfilled == 0 and st.state is StreamState.LIVE


async def test_ids_rest_cannot_serve_become_a_gap_entry_and_are_counted() -> None:
    dp, w, _ = make(FakeVenue(last=5000, holes=frozenset({102, 103})))
    st = stream(dp)
    dp.acknowledged(st, 7)
    dp.on_data(Conn(), st.name, agg(100), 1)
    dp.on_data(Conn(), st.name, agg(105), 2)
    await settle(st)
    kinds = [(k, p.get("to") if k == GAP else p["a"]) for _, p, k in w.rows]
    assert kinds == [(LIVE, 100), (BACKFILL, 101), (GAP, 103), (BACKFILL, 104), (LIVE, 105)]
    gap = next(p for _, p, k in w.rows if k == GAP)
    assert gap == {"from": 102, "to": 103, "reason": "ids 102..103 are not served by REST"}
    assert st.gaps_unfilled == 1 and st.ids_missing == 4 + 2 and st.reason.startswith("gap 102..103 not recovered")


async def test_resume_from_what_redis_holds(fake_redis, keys) -> None:
    from binance_common.feedstore import encode_gap

    dp, w, _ = make(FakeVenue(last=300))
    a, b, c = stream(dp, "nknusdt@aggTrade"), stream(dp, "nknusdt@trade"), stream(dp, "other@trade")
    await fake_redis.xadd(keys.history(a.name), {"d": agg(250), "r": 1})
    await fake_redis.xadd(keys.history(b.name), {"g": encode_gap(5, 290, "x"), "r": 1})
    await fake_redis.hset(keys.status(c.name), mapping={"first_ack": 1234})
    await dp.resume(fake_redis, keys, [a, b, c])
    assert (a.seq.last_id, b.seq.last_id, c.seq.last_id, c.first_ack) == (250, 290, None, 1234)
    dp.acknowledged(a, 1)
    await settle(a)
    assert w.ids(a.name) == list(range(251, 301))


async def test_a_stream_wanted_again_resumes_after_what_is_still_queued_for_redis(fake_redis, keys) -> None:
    """Dropped and wanted again before its entries reached Redis: the history will end at the queued entries,
    so the catch-up starts after them (from Redis's end it would write them twice)."""
    dp, w, _ = make(FakeVenue(last=300))
    a = stream(dp, "nknusdt@aggTrade")
    await fake_redis.xadd(keys.history(a.name), {"d": agg(250), "r": 1})
    w.pending = [(a.name, agg(251), 1, LIVE), ("other@trade", b"{}", 1, LIVE), (a.name, agg(260), 1, LIVE)]
    await dp.resume(fake_redis, keys, [a])
    assert a.seq.last_id == 260
    dp.acknowledged(a, 1)
    await settle(a)
    assert w.ids(a.name) == list(range(261, 301))


async def test_retryable_failures_keep_holding_and_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    from binance_common.errors import ServerError

    class Flaky(FakeVenue):
        fails = 1

        async def get(self, path: str, params: dict[str, Any]) -> Any:
            if self.fails:
                self.fails -= 1
                raise ServerError("503", status=503)
            return await super().get(path, params)

    dp, w, _ = make(Flaky(last=110))
    import binance_streamd.datapath as datapath

    monkeypatch.setattr(datapath, "FILL_RETRY_S", (0.0,))
    st = stream(dp)
    dp.acknowledged(st, 7)
    dp.on_data(Conn(), st.name, agg(100), 1)
    dp.lost(st, "x")
    dp.acknowledged(st, 8)
    await settle(st)
    assert w.ids(st.name) == list(range(100, 111)) and st.state is StreamState.LIVE


async def test_a_drop_during_a_catch_up_keeps_holding_until_the_next_ack() -> None:
    dp, w, q = make(FakeVenue(last=120))
    st = stream(dp)
    dp.acknowledged(st, 7)
    dp.on_data(Conn(), st.name, agg(100), 1)
    dp.lost(st, "a")
    q.gate = asyncio.Event()
    dp.acknowledged(st, 8)
    dp.on_data(Conn(), st.name, agg(121), 2)
    dp.lost(st, "b")  # lost again while REST answers
    q.gate.set()
    await settle(st)
    assert st.held is not None and st.state is StreamState.PENDING  # nothing released without a connection
    dp.acknowledged(st, 9)
    await settle(st)
    assert w.ids(st.name) == list(range(100, 122)) and st.held is None


async def test_malformed_frames_are_counted_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    dp, w, _ = make()
    st = stream(dp)
    dp.acknowledged(st, 7)
    dp.on_data(Conn(), st.name, b"{nope", 1)
    dp.on_data(Conn(), st.name, b'{"e":"aggTrade"}', 1)  # no id
    dp.on_data(Conn(), "not@ours", agg(1), 1)
    assert dp.malformed == 2 and w.rows == []
    assert "conn 7: malformed frame #1 ignored" in caplog.text


def test_status_record_reflects_the_stream() -> None:
    dp, _, _ = make()
    st = stream(dp)
    st.msgs, st.conn, st.rate = 3, 9, 1.234
    rec = st.record()
    assert (rec.state, rec.conn, rec.msgs, rec.rate) == ("pending", "9", 3, 1.23)


# --- exact values: every field, every argument (each assertion kills a deliberately introduced bug) ----------

def test_the_status_record_carries_every_counter() -> None:
    from binance_common.feedstore import StatusRecord

    dp, _, _ = make()
    st = stream(dp)
    for i, f in enumerate(("first_ack", "msgs", "dups", "last_recv", "last_event", "gaps_found", "gaps_filled",
                           "gaps_unfilled", "ids_missing", "reconnects"), start=1):
        setattr(st, f, 100 + i)
    st.conn, st.rate, st.reason, st.since = 9, 2.345, "why", 77
    rec = st.record()
    assert rec.updated > 0
    assert rec == StatusRecord(state="pending", reason="why", conn="9", since=77, first_ack=101, msgs=102, dups=103,
                               last_recv=104, last_event=105, gaps_found=106, gaps_filled=107, gaps_unfilled=108,
                               ids_missing=109, reconnects=110, rate=2.35, updated=rec.updated)
    st.conn = None
    assert st.record().conn == ""
    st.set_state(StreamState.LIVE, "fine")
    assert st.state is StreamState.LIVE and st.reason == "fine" and st.since > 77


class RecWriter(FakeWriter):
    def __init__(self) -> None:
        super().__init__()
        self.recv: list[Any] = []

    def add(self, stream: str, payload: bytes, recv_ms: int, kind: int = LIVE) -> None:
        super().add(stream, payload, recv_ms, kind)
        self.recv.append(recv_ms)


async def test_receive_times_event_times_and_book_diffs_reach_their_targets() -> None:
    w, q = RecWriter(), FakeQueue(FakeVenue(last=5000))
    dp = DataPath({}, w, q, max_ids=20_000)  # type: ignore[arg-type]
    diffs: list[tuple[str, Any, int]] = []
    dp.book_diff = lambda sym, obj, recv: diffs.append((sym, obj, recv))
    book = dp.new_stream("btcusdt@depth@100ms", StreamKind.DEPTH)
    dp.states[book.name] = book
    dp.book_streams[book.name] = "BTCUSDT"
    d1 = {"e": "depthUpdate", "E": 5, "s": "BTCUSDT", "U": 1, "u": 2, "b": [], "a": []}
    dp.on_data(Conn(), book.name, orjson.dumps(d1), 41)  # before the ack: the slow path
    assert diffs == [("BTCUSDT", d1, 41)] and book.last_event == 5 and book.last_recv == 41 and book.conn == 7
    dp.acknowledged(book, 7)
    d2 = {**d1, "E": 6, "U": 3, "u": 3}
    dp.on_data(Conn(), book.name, orjson.dumps(d2), 42)  # live: the hot path
    assert diffs[-1] == ("BTCUSDT", d2, 42) and book.last_event == 6 and book.last_recv == 42
    assert w.recv == [41, 42] and book.msgs == 2
    st = stream(dp)
    dp.acknowledged(st, 7)
    dp.on_data(Conn(), st.name, agg(100), 43)
    dp.on_data(Conn(), st.name, agg(103), 44)
    await settle(st)
    assert w.recv[2] == 43 and w.recv[-1] == 44 and all(isinstance(r, int) and r > 0 for r in w.recv)
    assert st.last_event == 103 and st.last_recv == 44


async def test_a_gap_found_while_releasing_keeps_the_rest_held_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    dp, w, q = make(FakeVenue(last=4992))
    st = stream(dp)
    dp.acknowledged(st, 7)
    dp.on_data(Conn(), st.name, agg(4980), 1)
    dp.lost(st, "")
    q.gate = asyncio.Event()
    dp.acknowledged(st, 8)
    for i in (4991, 4995, 4996, 4997):  # 4993..4994 exist nowhere
        dp.on_data(Conn(), st.name, agg(i), 5)
    q.gate.set()
    await settle(st)
    kinds = [(k, p.get("to") if k == GAP else p["a"]) for _, p, k in w.rows]
    assert kinds == [(LIVE, 4980), *[(BACKFILL, i) for i in range(4981, 4993)], (GAP, 4994),
                     (LIVE, 4995), (LIVE, 4996), (LIVE, 4997)]
    assert st.gaps_found == 2 and st.gaps_unfilled == 1 and st.dups == 1 and st.held is None
    assert st.reason.startswith("gap 4993..4994 not recovered") and st.state is StreamState.LIVE


async def test_counters_accumulate_over_several_gaps() -> None:
    dp, w, _ = make(FakeVenue(last=5000, holes=frozenset({102, 110})))
    st = stream(dp)
    dp.acknowledged(st, 7)
    dp.on_data(Conn(), st.name, agg(100), 1)
    dp.on_data(Conn(), st.name, agg(104), 1)
    await settle(st)
    dp.on_data(Conn(), st.name, agg(112), 1)
    await settle(st)
    assert (st.gaps_found, st.gaps_filled, st.gaps_unfilled) == (2, 2, 2)
    assert st.ids_missing == 3 + 7 + 1 + 1 and st.msgs == 1 + 2 + 1 + 6 + 1
    assert st.reason == "gap 110..110 not recovered: ids 110..110 are not served by REST"


def test_rest_ids_out_of_order_are_never_silent() -> None:
    from binance_streamd.catchup import DataRecord

    dp, w, _ = make()
    st = stream(dp)
    st.seq.last_id = 100
    got = dp._write_records(st, [DataRecord(orjson.loads(agg(105)), 105), DataRecord(orjson.loads(agg(103)), 103)])
    assert got == 1 and st.seq.last_id == 105
    assert [(k, p.get("from"), p.get("to"), p.get("reason")) for _, p, k in w.rows if k == GAP] == \
        [(GAP, 101, 104, "ids not served by REST")]
    assert w.rows[-1][1]["a"] == 105 and st.gaps_unfilled == 1 and st.ids_missing == 4


async def test_resume_reads_the_trade_id_field_and_survives_a_corrupt_entry(fake_redis, keys) -> None:
    dp, _, _ = make()
    t, bad, one = stream(dp, "nknusdt@trade"), stream(dp, "bad@trade"), stream(dp, "one@trade")
    await fake_redis.xadd(keys.history(t.name), {"d": orjson.dumps({"e": "trade", "t": 77, "a": 5}), "r": 1})
    await fake_redis.xadd(keys.history(bad.name), {"d": b"{not json", "r": 1})
    await fake_redis.hset(keys.status(bad.name), mapping={"first_ack": 55})
    await fake_redis.hset(keys.status(one.name), mapping={"first_ack": 1})
    await dp.resume(fake_redis, keys, [t, bad, one])
    assert (t.seq.last_id, bad.seq.last_id, bad.first_ack, one.first_ack) == (77, None, 55, 1)


async def test_a_malformed_held_message_is_counted_at_release() -> None:
    dp, w, _ = make(FakeVenue(last=100))
    st = stream(dp)
    dp.acknowledged(st, 7)
    dp.on_data(Conn(), st.name, agg(100), 1)
    dp.lost(st, "")
    dp.on_data(Conn(), st.name, b'{"e":"aggTrade"}', 2)  # held: checked only at release
    dp.on_data(Conn(), st.name, b'{"e":"aggTrade"}', 2)
    dp.acknowledged(st, 8)
    await settle(st)
    assert dp.malformed == 2 and w.ids(st.name) == [100]


async def test_the_messages_held_behind_a_fill_are_capped_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    import binance_streamd.datapath as datapath

    monkeypatch.setattr(datapath, "MAX_HELD", 3)
    dp, w, q = make(FakeVenue(last=4990))
    st = stream(dp)
    dp.acknowledged(st, 7)
    dp.on_data(Conn(), st.name, agg(4980), 1)
    dp.lost(st, "")
    q.gate = asyncio.Event()  # the catch-up waits: everything live is held
    dp.acknowledged(st, 8)
    for i in range(4991, 4996):
        dp.on_data(Conn(), st.name, agg(i), 5)
    assert st.held is not None and [orjson.loads(p)["a"] for p, _, _ in st.held] == [4993, 4994, 4995]
    assert st.gaps_unfilled == 2 and st.reason.startswith("more than 3 messages held")
