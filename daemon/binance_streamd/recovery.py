"""What the data path does when Redis loses trade messages, so that a history never has a silent hole.

* **The writer's buffer overflows** (Redis down longer than ``redis_buffer_max`` messages): the stream of a
  message thrown away goes back to the id before it; its later unsent messages leave the buffer, its live
  data is held, and once Redis takes writes again a fill recovers the span from REST, in id order
  (:meth:`RedisRecovery.dropped`).
* **Redis loses writes it had confirmed** (restarted from an older snapshot, a lagging replica promoted; the
  writer sees it in its mark, :mod:`writer_script`): every trade stream is parked (its unsent live messages
  join its held ones), then goes back to where its history in Redis now ends and is caught up from there
  (:meth:`RedisRecovery.rewound`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

import orjson

from binance_common.feedstore import StreamState, decode_history, entry_last_id
from binance_common.streams import TRADE_ID_FIELD

from .datapath import DataPath, Stream
from .writer import GAP, LIVE, Message

log = logging.getLogger(__name__)


class RedisRecovery:
    """The writer's two callbacks (``on_dropped``, ``on_rewound``) over one :class:`DataPath`."""

    def __init__(self, dp: DataPath) -> None:
        self.dp = dp
        self._tasks: set[asyncio.Task[None]] = set()

    def dropped(self, msg: Message) -> bool:
        """The writer's full buffer (Redis down) threw ``msg`` away. True when its stream was taken back (other
        streams lose a latest value or a history entry, counted as dropped)."""
        stream, payload, _, kind = msg
        dp = self.dp
        st = dp.states.get(stream)
        if st is None or not st.trades:
            return False
        try:
            obj = orjson.loads(payload)
            # a gap entry: back to its start (an unknown start: right after it, the entry's note is lost)
            first = (obj.get("from") or obj["to"] + 1) if kind == GAP else obj[TRADE_ID_FIELD[st.kind]]
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return False
        dp.writer.dropped += len(dp.writer.withdraw(stream))  # fetched again by the fill
        if isinstance(first, int):
            st.seq.last_id = first - 1
        st.taken_back += 1
        if st.held is None:
            st.held = deque()
        st.fill_wanted, st.fill_until = True, None
        if st.acked:
            dp.start_fill(st)  # catching_up: its history lacks the span until the fill has run
        st.reason = "Redis did not take writes; its messages are fetched again once it does"
        return True

    def rewound(self) -> None:
        """Redis lost writes it had confirmed: park every trade stream, then (:meth:`_unpark`) take it back."""
        parked: list[tuple[Stream, int]] = []
        for st in self.dp.states.values():
            if not st.trades:
                continue
            live = [(p, orjson.loads(p), r) for _, p, r, k in self.dp.writer.withdraw(st.name) if k == LIVE]
            st.held = deque([*live, *(st.held or ())])
            st.taken_back += 1
            st.parked, st.fill_wanted = True, False  # a fill under way stops; nothing is released yet
            # not live: its history lacks what Redis lost until the catch-up (stream-first answers wait)
            st.set_state(StreamState.CATCHING_UP, "Redis went back in time; catching up from where its history "
                         "now ends")
            parked.append((st, st.taken_back))
        if parked:
            task = asyncio.get_running_loop().create_task(self._unpark(parked), name="unpark")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """End every unpark under way (the term is over; the next one resumes from Redis by itself)."""
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    async def _unpark(self, streams: list[tuple[Stream, int]]) -> None:
        """Read where each parked stream's history ends (retrying while Redis fails: the streams hold meanwhile)
        and catch it up from there. A stream taken back again since, or forgotten, is left to that."""
        w = self.dp.writer
        delay = 0.5
        while True:
            try:
                pipe = w.redis.pipeline(transaction=False)
                for st, _ in streams:
                    pipe.xrevrange(w.keys.history(st.name), "+", "-", count=1)
                ends = await pipe.execute()
                break
            except Exception as e:  # Redis failing again: the streams stay parked, holding
                log.warning("could not read where %d histories end (%s); retrying", len(streams), e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        for (st, gen), end in zip(streams, ends, strict=True):
            if self.dp.states.get(st.name) is not st or st.taken_back != gen or not st.parked:
                continue  # forgotten meanwhile, or a newer take-back owns it
            last = None
            if end:
                with contextlib.suppress(ValueError, KeyError, TypeError, orjson.JSONDecodeError):
                    last = entry_last_id(decode_history(end[0][1]), TRADE_ID_FIELD[st.kind])
            if last is not None:
                st.seq.last_id = last
            elif st.first_ack:  # an empty history: caught up by time from the first acknowledgement
                st.seq.last_id = None
            elif st.held:  # nothing to go by: it starts again with what is held
                with contextlib.suppress(KeyError, TypeError):
                    st.seq.last_id = st.held[0][1][TRADE_ID_FIELD[st.kind]] - 1
            st.parked = False
            st.fill_wanted, st.fill_until = True, None
            log.info("%s: back to id %s after Redis lost writes", st.name, st.seq.last_id)
            if st.acked:
                self.dp.start_fill(st)
