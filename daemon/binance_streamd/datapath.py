"""The data path: every frame from the socket callback to the writer, and the continuity of trade streams.

Hot path (:meth:`DataPath.on_data`): parse, sequence check, hand the verbatim payload to the writer and,
for a book's depth stream, the diff to its book. Everything else is off that path:

* **Holding.** A trade or aggTrade stream whose continuity is not established (just created, its
  connection lost, or a gap shown by the live data) holds its live messages while a *fill* recovers the
  missing ids from REST (:mod:`catchup`), then releases them through the sequencer, so ``hist:<stream>``
  stays complete and in id order. Holding starts before the subscription is acknowledged (frames can come
  before the ack is processed) and the catch-up starts at the ack, without waiting for a later trade: a
  quiet symbol's trades in a drop are recovered too.
* **Resume.** A stream starts from the last id its Redis history accounts for (:meth:`DataPath.resume`),
  or, with no id yet, from the time of its first acknowledgement: a restart (or a standby's takeover)
  continues the history instead of starting a new one.
* **Gaps that cannot be filled** (too many ids, endpoint unavailable, ids REST does not have) become gap
  entries in the history, counted in the status; never silent.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis

from binance_common.errors import BinanceError
from binance_common.feedstore import (
    COUNTER_FIELDS,
    F_DATA,
    F_GAP,
    StatusRecord,
    StreamCounters,
    StreamState,
    decode_history,
    encode_gap,
    entry_last_id,
)
from binance_common.keys import Keys
from binance_common.streams import FUTURES_PREFIX, TRADE_ID_FIELD, StreamKind
from binance_common.streams import SYMBOL_RE as _SYMBOL_RE
from binance_common.timeutil import now_ms

from .catchup import GapRecord, Record, TradeSource, plan_fill
from .restqueue import Priority, RestQueue
from .sequence import NEW, StreamSequencer
from .writer import BACKFILL, GAP, LATEST, RedisWriter

log = logging.getLogger(__name__)

MAX_HELD = 200_000  # live messages held behind one fill; past this the oldest are dropped (counted unfilled)
FILL_RETRY_S = (0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass
class Stream(StreamCounters):
    """One wanted stream of this daemon: its sequencer, state and counters (``status:<stream>``; the counters,
    ``first_ack`` among them (ms of the first acknowledgement while the history holds no id), are
    :class:`~binance_common.feedstore.StreamCounters`)."""

    name: str
    kind: StreamKind
    seq: StreamSequencer
    state: StreamState = StreamState.PENDING
    reason: str = ""
    since: int = field(default_factory=now_ms)
    conn: int | None = None
    rate: float = 0.0
    rate_base: int = 0
    held: deque[tuple[bytes, Any, int]] | None = None  # (payload, decoded, recv ms) held behind a fill
    fill_wanted: bool = False  # a fill is asked for (at the next acknowledgement, or now)
    fill_until: int | None = None  # the last id the asked-for fill must reach (None: the present)
    fill_task: asyncio.Task[None] | None = None
    acked: bool = False  # the current connection acknowledged this stream
    taken_back: int = 0  # times Redis being down made the writer throw its messages away (recovered by a fill)
    parked: bool = False  # held, nothing released or filled, until Redis says where the history ends
    fanout: str | None = None  # all-market array streams: the per-symbol stream suffix each element updates

    @property
    def trades(self) -> bool:
        return self.kind in TRADE_ID_FIELD

    def set_state(self, state: StreamState, reason: str = "") -> None:
        if state is not self.state:
            self.state, self.since = state, now_ms()
        self.reason = reason

    def record(self) -> StatusRecord:
        return StatusRecord(**{f: getattr(self, f) for f in COUNTER_FIELDS}, state=self.state.value,
                            reason=self.reason, conn=str(self.conn or ""), since=self.since, rate=round(self.rate, 2),
                            updated=now_ms())


class DataPath:
    def __init__(self, states: dict[str, Stream], writer: RedisWriter, queue: RestQueue, *,
                 max_ids: int, book_diff: Any = None, futures_queue: RestQueue | None = None) -> None:
        self.states = states
        self.writer = writer
        self.queue = queue
        self.futures_queue = futures_queue or queue  # catch-ups of um: streams (fapi, its own budget)
        self.max_ids = max_ids
        self.book_streams: dict[str, str] = {}  # depth@100ms stream -> symbol whose book it feeds
        self.book_diff = book_diff  # callable(symbol, payload, recv_ms), the book manager's on_diff_nowait
        self.malformed = 0
        self.fills = 0
        self._sources: dict[str, TradeSource] = {}

    def new_stream(self, name: str, kind: StreamKind) -> Stream:
        st = Stream(name, kind, StreamSequencer(name), reason="waiting for Binance to acknowledge the subscription")
        if kind is StreamKind.ALL_MINI_TICKERS:
            st.fanout = "@miniTicker"
        elif kind is StreamKind.ALL_ROLLING_TICKERS:
            st.fanout = "@ticker_" + name[len("!ticker_"):-len("@arr")]
        if st.trades:
            st.held, st.fill_wanted = deque(), True  # continuity is established by a catch-up at the first ack
        return st

    # --- resume from Redis ----------------------------------------------------------------------------
    def _queued_last_ids(self, streams: list[Stream]) -> dict[str, int | None]:
        """The last id of each of ``streams`` still queued in the writer (a stream dropped and wanted again
        before its entries reached Redis): its history will end there, not where Redis ends now. One pass."""
        wanted = {st.name: TRADE_ID_FIELD[st.kind] for st in streams}
        out: dict[str, int | None] = {}
        for name, payload, _, kind in reversed(self.writer.pending):
            if name in wanted and name not in out:
                try:
                    out[name] = entry_last_id(decode_history({F_GAP if kind == GAP else F_DATA: payload}),
                                              wanted[name])
                except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
                    out[name] = None
                if len(out) == len(wanted):
                    break
        return out

    async def resume(self, redis: aioredis.Redis, keys: Keys, streams: list[Stream]) -> None:
        """Start each trade stream from the last id its history accounts for (else from its recorded first
        acknowledgement). One round trip for all of them."""
        streams = [s for s in streams if s.trades]
        if not streams:
            return
        pipe = redis.pipeline(transaction=False)
        for st in streams:
            pipe.xrevrange(keys.history(st.name), "+", "-", count=1)
            pipe.hget(keys.status(st.name), "first_ack")
        rows = await pipe.execute()
        queued = self._queued_last_ids(streams)
        for i, st in enumerate(streams):
            last, first_ack = rows[2 * i], rows[2 * i + 1]
            lid = queued.get(st.name)  # entries of an earlier subscription still on their way to Redis
            if last and lid is None:
                try:
                    lid = entry_last_id(decode_history(last[0][1]), TRADE_ID_FIELD[st.kind])
                except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
                    lid = None
            if lid is not None:
                st.seq.last_id = lid
                continue
            if first_ack and (v := int(first_ack)) > 0:
                st.first_ack = v

    # --- connection events ----------------------------------------------------------------------------
    def lost(self, st: Stream, reason: str) -> None:
        """The connection carrying ``st`` ended (not a rotation): hold its live data until caught up."""
        st.reconnects += 1
        st.acked = False
        st.set_state(StreamState.PENDING, f"reconnecting: {reason}" if reason else "reconnecting")
        if st.trades:
            if st.held is None:
                st.held = deque()
            st.fill_wanted = True
            st.fill_until = None

    def acknowledged(self, st: Stream, conn_id: int) -> bool:
        """``st`` was (re)subscribed on ``conn_id``; True when a first acknowledgement time was recorded."""
        st.conn = conn_id
        st.acked = True
        first = False
        if st.trades and st.seq.last_id is None and not st.first_ack:
            st.first_ack = now_ms()  # the history starts here: nothing before it to catch up
            first = True
            st.fill_wanted = False
            self._release(st)
        if st.trades and st.fill_wanted:
            self.start_fill(st)
        elif st.state is not StreamState.LIVE and st.held is None:
            st.set_state(StreamState.LIVE)
        return first

    # --- hot path -------------------------------------------------------------------------------------
    def on_data(self, conn: Any, stream: str, payload: bytes, recv_ms: int) -> None:
        st = self.states.get(stream)
        if st is None:
            return  # a stream being unsubscribed, or not ours
        try:
            obj = orjson.loads(payload)
            if st.held is not None:
                st.conn = conn.id
                self._hold(st, payload, obj, recv_ms)
                return
            verdict = st.seq.check(obj)
        except (orjson.JSONDecodeError, TypeError, ValueError, KeyError, AttributeError):
            self.on_malformed(conn, payload)
            return
        if verdict is NEW and st.state is StreamState.LIVE:  # the common case, kept short
            st.conn = conn.id
            st.msgs += 1
            st.last_recv = recv_ms
            e = obj.get("E") if obj.__class__ is dict else None
            if e.__class__ is int:
                st.last_event = e
            self.writer.add(stream, payload, recv_ms)
            if stream in self.book_streams:
                self.book_diff(self.book_streams[stream], obj, recv_ms)
            elif st.fanout is not None:
                self._fan_out(st.fanout, obj, recv_ms)
            return
        st.conn = conn.id
        self._accept(st, payload, obj, recv_ms, verdict)

    def _accept(self, st: Stream, payload: bytes, obj: Any, recv_ms: int, verdict: Any) -> None:
        """Everything but the common case: duplicates, gaps, the first message after a state change."""
        if verdict.kind == "duplicate":
            st.dups += 1
            return
        if verdict.kind == "gap":
            st.gaps_found += 1
            lo, hi = verdict.missing_from or 0, verdict.missing_to or 0
            st.ids_missing += max(0, hi - lo + 1)
            if st.trades:  # recover lo..hi before this message: hold it, unchecked, behind a fill
                st.seq.last_id = lo - 1
                st.held = deque([(payload, obj, recv_ms)])
                st.fill_wanted, st.fill_until = True, hi
                self.start_fill(st)
                return
            st.gaps_unfilled += 1
        if st.state is not StreamState.LIVE and st.acked:
            st.set_state(StreamState.LIVE)
        st.msgs += 1
        st.last_recv = recv_ms
        e = obj.get("E") if isinstance(obj, dict) else None
        if isinstance(e, int):
            st.last_event = e
        self.writer.add(st.name, payload, recv_ms)
        if st.name in self.book_streams and isinstance(obj, dict):
            self.book_diff(self.book_streams[st.name], obj, recv_ms)
        elif st.fanout is not None:
            self._fan_out(st.fanout, obj, recv_ms)

    def _fan_out(self, suffix: str, obj: Any, recv_ms: int) -> None:
        """An all-market array (``!miniTicker@arr``, ``!ticker_<w>@arr``): each element becomes the latest value
        of its symbol's own stream (``<s>@miniTicker``, ``<s>@ticker_<w>``), so stream-first answers cover
        every symbol at no REST weight. Elements with no valid symbol are skipped."""
        if not isinstance(obj, list):
            return
        for el in obj:
            sym = el.get("s") if isinstance(el, dict) else None
            if isinstance(sym, str) and _SYMBOL_RE.fullmatch(sym):
                self.writer.add(sym.lower() + suffix, orjson.dumps(el), recv_ms, LATEST)

    def _hold(self, st: Stream, payload: bytes, obj: Any, recv_ms: int) -> None:
        held = st.held
        assert held is not None
        if len(held) >= MAX_HELD:
            st.reason = f"more than {MAX_HELD} messages held behind a catch-up; oldest dropped"
            held.popleft()
            st.gaps_unfilled += 1
        held.append((payload, obj, recv_ms))

    def on_malformed(self, conn: Any, frame: bytes | str) -> None:
        self.malformed += 1
        if self.malformed <= 10 or self.malformed % 1000 == 0:
            log.warning("conn %d: malformed frame #%d ignored: %r", conn.id, self.malformed, frame[:120])

    # --- fills ------------------------------------------------------------------------------------------
    def _source(self, st: Stream) -> TradeSource:
        src = self._sources.get(st.name)
        if src is None:
            if len(self._sources) > 10_000:
                self._sources.clear()

            queue = self.futures_queue if st.name.startswith(FUTURES_PREFIX) else self.queue

            async def get(path: str, params: dict[str, Any]) -> Any:
                return await queue.get(Priority.CATCHUP, path, params)

            src = self._sources[st.name] = TradeSource(st.name, get)
        return src

    def start_fill(self, st: Stream) -> None:
        if st.held is None:
            st.held = deque()
        if st.parked:
            return  # _unpark starts it
        st.set_state(StreamState.CATCHING_UP)
        if st.fill_task is None or st.fill_task.done():
            st.fill_task = asyncio.get_running_loop().create_task(self._fill(st), name=f"fill-{st.name}")

    async def _fill(self, st: Stream) -> None:
        attempt = 0
        try:
            while st.fill_wanted and st.acked and not st.parked:
                await self.writer.writable()  # a Redis that is down would only throw the records away
                if st.parked:  # Redis went back in time meanwhile: the unpark restarts the fill from there
                    break
                st.fill_wanted = False
                until, st.fill_until = st.fill_until, None
                taken_back = st.taken_back  # a take-back during the REST call moves the position: plan again
                try:
                    records = await plan_fill(self._source(st), last_id=st.seq.last_id,
                                              start_ms=st.first_ack or None, until_id=until, max_ids=self.max_ids)
                except BinanceError as e:  # retryable (5xx, transport): try again, still holding
                    if st.parked:
                        break
                    if st.fill_wanted:  # asked again meanwhile (a drop: up to the present): cover both asks
                        st.fill_until = None if until is None or st.fill_until is None else max(until, st.fill_until)
                    else:
                        st.fill_wanted, st.fill_until = True, until
                    st.reason = f"catch-up failed, retrying: {e}"
                    delay = FILL_RETRY_S[min(attempt, len(FILL_RETRY_S) - 1)]
                    attempt += 1
                    log.warning("%s: catch-up failed (%s); retrying in %.1f s", st.name, e, delay)
                    await asyncio.sleep(delay)
                    continue
                if st.parked or st.taken_back != taken_back:
                    continue  # planned from a position that no longer holds (the take-back asked a new fill)
                self.fills += 1
                got = self._write_records(st, records)
                if got and until is None:  # a catch-up that found trades the connection missed
                    st.gaps_found += 1
                    st.ids_missing += got
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: catch-up crashed; releasing held messages", st.name)
        st.fill_task = None  # a gap found while releasing starts a new fill
        if st.acked:  # else the connection was lost meanwhile: keep holding until the next catch-up
            self._release(st)

    def _write_records(self, st: Stream, records: list[Record]) -> int:
        """Write a fill's records through the sequencer; the number of trades written."""
        got = 0
        taken_back = st.taken_back
        for rec in records:
            if st.taken_back != taken_back:
                break  # Redis went down under this fill and the stream was taken back: the next fill redoes it
            if isinstance(rec, GapRecord):
                self._write_gap(st, rec.from_id, rec.to_id, rec.reason)
                continue
            v = st.seq.check(rec.payload)
            if v.kind == "duplicate":
                continue
            if v.kind == "gap":  # REST skipped ids plan_fill did not report: never silent
                self._write_gap(st, v.missing_from, v.missing_to or 0, "ids not served by REST")
                if st.taken_back != taken_back:
                    break  # the gap entry's write took the stream back: this record is fetched again too
            self.writer.add(st.name, orjson.dumps(rec.payload, default=str), now_ms(), BACKFILL)
            got += 1
        if got:
            st.gaps_filled += 1
            st.msgs += got
            log.info("%s: %d trades recovered from REST", st.name, got)
        return got

    def _write_gap(self, st: Stream, lo: int | None, hi: int, reason: str) -> None:
        if st.seq.last_id is None or hi > st.seq.last_id:  # before add(): a take-back inside it must win
            st.seq.last_id = hi
        st.gaps_unfilled += 1
        if lo is not None:
            st.ids_missing += max(0, hi - lo + 1)
        st.reason = f"gap {lo if lo is not None else '?'}..{hi} not recovered: {reason}"
        log.warning("%s: %s", st.name, st.reason)
        self.writer.add(st.name, encode_gap(lo, hi, reason), now_ms(), GAP)

    def _release(self, st: Stream) -> None:
        """Pass the held messages through the sequencer in order; a new gap starts another fill."""
        if st.parked:
            return
        held, st.held = st.held or deque(), None
        if st.acked and st.state is not StreamState.LIVE:
            st.set_state(StreamState.LIVE, "" if not st.reason.startswith("gap") else st.reason)
        for i, (payload, obj, recv_ms) in enumerate(held):
            try:
                verdict = st.seq.check(obj)
            except (TypeError, ValueError, KeyError, AttributeError):
                self.malformed += 1
                continue
            self._accept(st, payload, obj, recv_ms, verdict)
            if st.held is not None:  # a gap: the rest stays held, in order, behind the new fill
                st.held.extend(itertools.islice(held, i + 1, None))
                return
