"""RedisRecovery against the data path's fills, without sockets: a take-back (the writer's overflow, or Redis
going back in time) that lands while a fill waits for REST or for a writable Redis must win over the fill's
plan; a gap entry's take-back keeps its position; a dropped gap entry with no start withdraws nothing silently.
The writer is the real WriterBase (its buffer and overflow); REST is the catch-up tests' venue."""
from __future__ import annotations

import asyncio
from typing import Any

import orjson

from binance_common.keys import Keys
from binance_common.streams import StreamKind
from binance_streamd.catchup import DataRecord
from binance_streamd.datapath import DataPath
from binance_streamd.recovery import RedisRecovery
from binance_streamd.writer import GAP
from binance_streamd.writer_base import WriterBase
from tests.unit.test_catchup import FakeVenue
from tests.unit.test_datapath import Conn, FakeQueue, agg, settle


def rows(w: WriterBase, name: str) -> list[tuple[str, Any]]:
    out = []
    for s, p, _, k in w.pending:
        if s == name:
            o = orjson.loads(p)
            out.append(("gap", (o["from"], o["to"])) if k == GAP else ("id", o["a"]))
    return out


async def spin(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_take_back_while_the_fill_awaits_rest_refetches_rather_than_writing_a_false_gap() -> None:
    w = WriterBase(None, None, maxlen=1000, buffer_max=6)  # type: ignore[arg-type]
    venue = FakeVenue(last=99)
    q = FakeQueue(venue)
    dp = DataPath({}, w, q, max_ids=20_000)  # type: ignore[arg-type]
    w.on_dropped = RedisRecovery(dp).dropped
    st = dp.new_stream("nknusdt@aggTrade", StreamKind.AGG_TRADE)
    dp.states[st.name] = st
    st.seq.last_id = 99
    st.first_ack = 1
    dp.acknowledged(st, 7)
    await settle(st)                               # nothing missing
    assert st.held is None and st.seq.last_id == 99
    venue.last = 110
    w.pending.clear()
    for i in (100, 101, 102):                      # live, queued for Redis (backlog, Redis up)
        dp.on_data(Conn(), st.name, agg(i), 1)
    q.gate = asyncio.Event()
    dp.on_data(Conn(), st.name, agg(110), 2)       # gap 103..109: fill starts, REST is slow
    await spin()
    assert st.fill_task is not None and not st.fill_task.done()
    # Redis goes down while REST answers; other streams overflow the buffer, the victim is our id 100
    w.redis_ok = False
    w._ok.clear()
    for j in range(4):
        w.add("other@depth", b'{"x":%d}' % j, 3)
    assert st.taken_back == 1 and st.seq.last_id == 99
    w.redis_ok = True
    w._ok.set()
    q.gate.set()
    await settle(st)
    r = rows(w, st.name)
    gaps = [x for x in r if x[0] == "gap"]
    assert gaps == [], f"ids 100..102 exist at REST but were written as an unfillable gap: {r}"
    assert [v for k, v in r if k == "id"] == list(range(100, 111))


class GatedPipe:
    def __init__(self, owner: GatedRedis) -> None:
        self.o, self.n = owner, 0

    def xrevrange(self, *a: Any, **k: Any) -> None:
        self.n += 1

    async def execute(self) -> list[Any]:
        await self.o.gate.wait()
        fields = {b"d": orjson.dumps({"a": self.o.end}), b"r": b"1"}
        return [[(b"1-0", fields)] for _ in range(self.n)]


class GatedRedis:
    """The one read _unpark makes (where each history ends), answered when the test opens the gate: the
    ordering against the fill is the point, so it is a gate, not a Redis."""
    def __init__(self, end: int) -> None:
        self.end, self.gate = end, asyncio.Event()

    def pipeline(self, transaction: bool = False) -> GatedPipe:
        return GatedPipe(self)


async def test_a_fill_waiting_for_writable_does_not_run_while_its_stream_is_parked() -> None:
    redis = GatedRedis(end=80)                     # Redis came back from a snapshot: history ends at 80
    w = WriterBase(redis, Keys("t"), maxlen=1000, buffer_max=1000)  # type: ignore[arg-type]
    q = FakeQueue(FakeVenue(last=120))
    dp = DataPath({}, w, q, max_ids=20_000)  # type: ignore[arg-type]
    rec = RedisRecovery(dp)
    st = dp.new_stream("nknusdt@aggTrade", StreamKind.AGG_TRADE)
    dp.states[st.name] = st
    st.seq.last_id = 100                           # 81..100 were confirmed, then lost by Redis
    st.first_ack = 1
    w.redis_ok = False
    w._ok.clear()                                  # Redis down
    dp.lost(st, "x")
    dp.acknowledged(st, 8)                         # fill waits in writer.writable()
    await spin()
    rec.rewound()                                  # the writer's mark check (before its first batch)
    assert st.parked
    w.redis_ok = True
    w._ok.set()                                    # a non-trade batch is answered before XREVRANGE is
    await spin(50)
    written_while_parked = rows(w, st.name)
    redis.gate.set()
    await settle(st)
    await spin(50)
    await settle(st)
    ids = [v for k, v in rows(w, st.name) if k == "id"]
    assert ids == sorted(set(ids)) and ids[0] == 81, f"history after the rewind: {ids}"
    assert written_while_parked == [], f"a parked stream wrote {written_while_parked[:3]}..."



async def test_a_take_back_inside_write_gap_keeps_its_position() -> None:
    from binance_streamd.catchup import DataRecord, GapRecord

    w = WriterBase(None, None, maxlen=1000, buffer_max=4)  # type: ignore[arg-type]
    q = FakeQueue(FakeVenue(last=5000))
    dp = DataPath({}, w, q, max_ids=20_000)  # type: ignore[arg-type]
    w.on_dropped = RedisRecovery(dp).dropped
    st = dp.new_stream("nknusdt@aggTrade", StreamKind.AGG_TRADE)
    dp.states[st.name] = st
    st.held, st.fill_wanted, st.seq.last_id = deque_(), False, 49
    # an earlier part of this fill is still unsent when Redis goes down
    recs = [DataRecord(orjson.loads(agg(i)), i) for i in (50, 51, 52)]
    dp._write_records(st, recs)
    w.add("other@depth", b'{"x":1}', 1)
    w.redis_ok = False                             # buffer is full (4) and Redis is down
    dp._write_records(st, [GapRecord(53, 60, "REST does not have them"), DataRecord(orjson.loads(agg(61)), 61)])
    assert st.taken_back == 1
    # id 50 was thrown away: the stream must go back to 49 so 50..52 are fetched again
    assert st.seq.last_id == 49, f"position after the take-back: {st.seq.last_id} (50..52 silently lost)"


def deque_():
    from collections import deque
    return deque()


async def test_a_dropped_gap_entry_without_a_start_takes_its_stream_back() -> None:
    from binance_common.feedstore import encode_gap

    w = WriterBase(None, None, maxlen=1000, buffer_max=4)  # type: ignore[arg-type]
    dp = DataPath({}, w, FakeQueue(FakeVenue(last=5000)), max_ids=20_000)  # type: ignore[arg-type]
    w.on_dropped = RedisRecovery(dp).dropped
    st = dp.new_stream("nknusdt@aggTrade", StreamKind.AGG_TRADE)
    dp.states[st.name] = st
    st.held, st.fill_wanted = None, False
    w.add(st.name, encode_gap(None, 99, "more trades since the ack than REST returned"), 1, GAP)
    for i in (100, 101, 102):
        w.add(st.name, agg(i), 1, 1)               # BACKFILL after the gap
    st.seq.last_id = 102
    w.redis_ok = False
    w.add("other@depth", b'{"x":1}', 1)            # overflow: the gap entry is the victim
    assert st.taken_back == 1 and rows(w, st.name) == []   # 100..102 withdrawn
    assert st.seq.last_id < 100, f"100..102 were withdrawn but the stream stays at {st.seq.last_id}"


class _Pipe:
    def __init__(self, gate: asyncio.Event, end: int) -> None:
        self.gate, self.end, self.n = gate, end, 0

    def xrevrange(self, *a: Any, **k: Any) -> None:
        self.n += 1

    async def execute(self) -> list[Any]:
        await self.gate.wait()
        return [[(b"1-0", {b"d": orjson.dumps({"a": self.end}), b"r": b"1"})] for _ in range(self.n)]


class TwoGates:
    """Each unpark's read (one pipeline each) answers when its own gate opens; the history ends at 80 both
    times (the first unpark's refill is still in the writer's buffer when the second reads)."""

    def __init__(self) -> None:
        self.gates: list[asyncio.Event] = []

    def pipeline(self, transaction: bool = False) -> _Pipe:
        g = asyncio.Event()
        self.gates.append(g)
        return _Pipe(g, 80)


async def test_overlapping_unparks_do_not_take_a_caught_up_stream_back_again() -> None:
    redis = TwoGates()
    w = WriterBase(redis, Keys("t"), maxlen=1000, buffer_max=10_000)  # type: ignore[arg-type]
    dp = DataPath({}, w, FakeQueue(FakeVenue(last=120)), max_ids=20_000)  # type: ignore[arg-type]
    rec = RedisRecovery(dp)
    st = dp.new_stream("nknusdt@aggTrade", StreamKind.AGG_TRADE)
    dp.states[st.name] = st
    st.seq.last_id, st.first_ack, st.held, st.fill_wanted, st.acked = 100, 1, None, False, True
    rec.rewound()  # first rewind: unpark #1 reads (Redis flapping)
    await spin()
    rec.rewound()  # the second before unpark #1 got its answer: #2 owns the stream now
    await spin()
    redis.gates[0].set()
    await spin()
    await settle(st)
    assert st.parked  # unpark #1 leaves it to #2
    redis.gates[1].set()
    await spin()
    await settle(st)
    for i in (121, 122):
        dp.on_data(Conn(), st.name, agg(i), 1)
    ids = [orjson.loads(p)["a"] for s, p, _, k in w.pending if s == st.name and k != GAP]
    assert ids == list(range(81, 123))


async def test_a_record_after_a_gap_entry_that_took_its_stream_back_is_not_queued() -> None:
    """REST skipped ids the plan did not report: the gap entry's write overflows the buffer and takes the
    stream back; the record that showed the gap must not be queued after that (it is fetched again)."""
    w = WriterBase(None, None, maxlen=1000, buffer_max=2)  # type: ignore[arg-type]
    dp = DataPath({}, w, FakeQueue(FakeVenue(last=60)), max_ids=20_000)  # type: ignore[arg-type]
    w.on_dropped = RedisRecovery(dp).dropped
    st = dp.new_stream("nknusdt@aggTrade", StreamKind.AGG_TRADE)
    dp.states[st.name] = st
    st.held, st.fill_wanted, st.seq.last_id, st.acked = None, False, 49, True
    w.add("other@depth", b'{"x":1}', 1)  # another stream's message, sent and awaiting its reply
    w._sent = 1
    w.redis_ok = False
    w._ok.clear()  # Redis down, the buffer (2) about to be full
    dp._write_records(st, [DataRecord(orjson.loads(agg(50)), 50), DataRecord(orjson.loads(agg(55)), 55)])
    assert st.taken_back == 1 and st.seq.last_id == 49  # id 50 was the victim: back to 49
    assert rows(w, st.name) == []
    w.redis_ok = True
    w._ok.set()  # Redis back: the take-back's fill runs (50..60 from REST)
    await settle(st)
    ids = [v for k, v in rows(w, st.name) if k == "id"]
    assert ids == list(range(50, 61))


async def test_an_unpark_keeps_holding_while_redis_cannot_be_read_and_ends_with_the_term() -> None:
    class Down:
        def pipeline(self, transaction: bool = False) -> Any:
            raise ConnectionError("Redis is down again")

    w = WriterBase(Down(), Keys("t"), maxlen=1000, buffer_max=1000)  # type: ignore[arg-type]
    dp = DataPath({}, w, FakeQueue(FakeVenue(last=120)), max_ids=20_000)  # type: ignore[arg-type]
    rec = RedisRecovery(dp)
    st = dp.new_stream("nknusdt@aggTrade", StreamKind.AGG_TRADE)
    dp.states[st.name] = st
    st.seq.last_id, st.first_ack, st.held, st.fill_wanted, st.acked = 100, 1, None, False, True
    rec.rewound()
    await spin(50)
    assert st.parked and st.fill_task is None  # no guess at where the history ends: it holds
    await rec.stop()
    assert not rec._tasks and st.fill_task is None
