"""A stream's capped history (``hist:<stream>``): the last N entries, or those after a cursor, optionally
waiting for new ones, with the count of entries the cap trimmed before they were read."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from binance_common.feedstore import GapEntry, decode_history
from binance_common.timeutil import now_ms

from ..answers.provenance import freshness, stale_after_ms
from ..answers.streams import GapInfo, HistoryEntry, StreamHistory
from .base import FeedBase, FeedError, decode_payload, id_tuple, text

MAX_HISTORY_COUNT = 1000
MAX_WAIT_S = 30.0
_CURSOR_RE = re.compile(r"^(\d{1,15})-(\d{1,12})(?::(\d{1,15}))?$")


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in a stream's history: the Redis entry id and, when known, its 1-based sequence number
    (how many entries had been added up to and including it), which lets a reader count trimmed entries."""

    ms: int
    seq: int
    n: int | None = None

    @property
    def entry_id(self) -> str:
        return f"{self.ms}-{self.seq}"

    def __str__(self) -> str:
        return self.entry_id if self.n is None else f"{self.entry_id}:{self.n}"


def parse_cursor(text: str) -> Cursor:
    """``"1700000000000-0:42"`` (as returned by the history tool), a bare Redis id, or ``"0"`` (the start)."""
    if not isinstance(text, str):
        raise FeedError("cursor must be a string")
    t = text.strip()
    if t in ("0", "0-0"):
        return Cursor(0, 0, 0)
    m = _CURSOR_RE.match(t)
    if not m:
        raise FeedError(
            f"invalid cursor {text[:60]!r}: pass the next_cursor of a previous history answer "
            "(e.g. 1700000000000-0:42), a Redis stream id (1700000000000-0), or 0 for the oldest entry"
        )
    return Cursor(int(m.group(1)), int(m.group(2)), int(m.group(3)) if m.group(3) else None)


class HistoryReads(FeedBase):
    async def history(
        self, stream: str, *, count: int, since: Cursor | None, wait_s: float, raw: bool = False
    ) -> StreamHistory:
        """Last ``count`` entries, or the entries after ``since`` (waiting up to ``wait_s`` for one)."""
        key = self.keys.history(stream)
        waited = 0
        if since is None:
            result = await self._last_n(key, count)
        else:
            result = await self._after(stream, key, since, count)
            if not result[0] and wait_s > 0:
                t0 = now_ms()
                await self.wait_for_entry(key, result[4] or since.entry_id, wait_s)
                waited = now_ms() - t0
                result = await self._after(stream, key, since, count)
        rows, first_n, missed, retained, end_cursor = result
        status = await self.status(stream)
        entries: list[HistoryEntry] = []
        for i, (eid, fields) in enumerate(rows):
            ms, seq = id_tuple(eid)
            cursor = str(Cursor(ms, seq, first_n + i if first_n is not None else None))
            entry = decode_history(fields)
            if isinstance(entry, GapEntry):
                gap = GapInfo(from_id=entry.from_id, to_id=entry.to_id, reason=entry.reason)
                entries.append(HistoryEntry(cursor=cursor, received_ms=entry.received_ms or ms, source="gap",
                                            data=None, gap=gap))
                continue
            data = entry.payload if raw else decode_payload(stream, entry.payload)[0]
            entries.append(HistoryEntry(cursor=cursor, received_ms=entry.received_ms or ms,
                                        source="rest" if entry.backfilled else "ws", data=data))
        if entries:
            last = entries[-1]
            next_cursor: str | None = last.cursor
            fr = freshness(
                now_ms=now_ms(),
                threshold_ms=stale_after_ms(stream),
                received_ms=last.received_ms,
                state=status.state,
                reason=status.reason,
                source="rest" if last.source == "gap" else last.source,
            )
        else:
            next_cursor = end_cursor if since is None else str(since)
            fr = freshness(
                now_ms=now_ms(),
                threshold_ms=stale_after_ms(stream),
                received_ms=None,
                state=status.state,
                reason=status.reason,
            )
        return StreamHistory(
            stream=stream,
            entries=entries,
            next_cursor=next_cursor,
            missed=missed,
            retained=retained,
            cap=self.history_cap,
            waited_ms=waited,
            freshness=fr,
        )

    @staticmethod
    def _xinfo(info: Any) -> tuple[int, int, tuple[int, int] | None, tuple[int, int] | None]:
        """(entries-added, length, first id, last id) from an XINFO STREAM answer."""
        d = {(text(k) or ""): v for k, v in info.items()}
        length = int(d.get("length") or 0)
        added = int(d.get("entries-added") or length)
        first = d.get("first-entry")
        last = d.get("last-entry")
        return added, length, id_tuple(first[0]) if first else None, id_tuple(last[0]) if last else None

    async def _last_n(self, key: str, count: int) -> tuple[list[Any], int | None, int | None, int, str | None]:
        """The newest ``count`` entries: (rows oldest first, sequence number of the first row, missed,
        retained, cursor of the stream's end)."""
        pipe = self.r.pipeline(transaction=True)
        pipe.xinfo_stream(key)
        pipe.xrevrange(key, "+", "-", count=count)
        info, rows = await pipe.execute(raise_on_error=False)
        if isinstance(info, Exception) or not info:  # no such key: nothing recorded yet
            return [], None, 0, 0, None
        added, length, _first, last = self._xinfo(info)
        rows = list(reversed(rows))
        end = str(Cursor(last[0], last[1], added)) if last else None
        return rows, (added - len(rows) + 1 if rows else None), 0, length, end

    async def _after(
        self, stream: str, key: str, since: Cursor, count: int
    ) -> tuple[list[Any], int | None, int | None, int, str | None]:
        """Entries after ``since``: (rows, sequence number of the first row, missed, retained, id to block on)."""
        at_start = since.ms == 0 and since.seq == 0
        pipe = self.r.pipeline(transaction=True)
        pipe.xinfo_stream(key)
        pipe.xrange(key, f"({since.entry_id}", "+", count=count)
        pipe.xrange(key, since.entry_id, since.entry_id, count=1)
        info, rows, exact = await pipe.execute(raise_on_error=False)
        if isinstance(info, Exception) or not info:
            raise FeedError(
                f"no history for {stream}: the stream is not in the feed yet (subscribe to it first; the "
                "latest-value tool shows its state)"
            )
        added, length, first, last = self._xinfo(info)
        cur = (since.ms, since.seq)
        if last is not None and cur > last:
            raise FeedError(
                f"cursor {since} is after the last entry of {stream} ({last[0]}-{last[1]}), so it names no "
                "entry; pass the next_cursor of a previous answer"
            )
        if since.n is not None and not at_start and since.n > added:
            raise FeedError(
                f"cursor {since} does not belong to the current history of {stream} (it counts {since.n} "
                f"entries, the stream has had {added}): the history was reset; read again without since"
            )
        first_seq = added - length + 1  # sequence number of the oldest retained entry
        if first is not None and not at_start and cur >= first:
            if not exact:
                raise FeedError(
                    f"cursor {since} does not name an entry of {stream}; pass the next_cursor of a previous answer"
                )
            missed: int | None = 0
            if since.n is not None:
                first_n: int | None = since.n + 1
            elif len(rows) < count:  # every entry after the cursor was returned
                first_n = added - len(rows) + 1
            else:
                first_n = None
        else:
            # The cap trimmed the cursor (or it is the start): rows begin at the oldest retained entry.
            first_n = first_seq
            missed = max(0, first_seq - since.n - 1) if since.n is not None else None
        block_from = f"{last[0]}-{last[1]}" if last else since.entry_id
        return rows, (first_n if rows else None), missed, length, block_from

