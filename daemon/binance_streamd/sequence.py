"""Per-stream sequence checking: tell a new payload from a duplicate or from one that follows a gap.

Pure and cheap (it runs once per received message). One :class:`StreamSequencer` per stream:

======================  =========================  ==========================================================
stream kind             id checked                 verdicts
======================  =========================  ==========================================================
``<s>@trade``           ``t`` (trade id)           contiguous: ``t == last + 1`` new; ``t <= last`` duplicate;
                                                   ``t > last + 1`` gap, missing ``[last + 1, t - 1]``
``<s>@aggTrade``        ``a`` (agg trade id)       as trade
``<s>@depth[@100ms]``   ``U``..``u`` (update ids)  ``u <= last`` duplicate; ``U > last + 1`` gap, missing
                                                   ``[last + 1, U - 1]``; else new
``<s>@bookTicker``      ``u`` (update id)          ``u > last`` new, else duplicate (ids of one symbol's book
                                                   are not contiguous in this stream, so there is no gap)
``<s>@depth<N>``        ``lastUpdateId``           as bookTicker
``um:<s>@depth...``     ``pu`` (previous ``u``)    USD-M futures: ``u <= last`` duplicate; ``pu != last`` gap
                                                   (ids ``[last + 1, U - 1]`` at least); futures partial
                                                   depth and bookTicker: ``u`` increasing
anything else           ``E`` (event time)         duplicate when a recent payload had the same ``E`` and is
                                                   equal; otherwise new (no gap notion)
======================  =========================  ==========================================================

After a gap the sequencer continues from the new id (the caller backfills ``missing_from..missing_to``,
both inclusive). The first payload after construction or :meth:`StreamSequencer.reset` is always new,
unless a starting ``last_id`` was given.

While a connection is rotated both connections deliver for a moment: the overlap's copies are duplicates
by the same rules (for event-time streams: a recent payload with the same ``E`` that is equal).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from binance_common.streams import TRADE_ID_FIELD, StreamKind, parse_stream

__all__ = ["DUPLICATE", "NEW", "SeqVerdict", "StreamSequencer"]

_RECENT = 16  # payloads remembered per E-checked stream (covers two interleaved connections)


@dataclass(frozen=True, slots=True)
class SeqVerdict:
    """Outcome of :meth:`StreamSequencer.check`.

    ``missing_from``/``missing_to`` are set only for ``kind == "gap"``: the inclusive range of ids
    (trade ids, agg trade ids or depth update ids) that never arrived.
    """

    kind: Literal["new", "duplicate", "gap"]
    missing_from: int | None = None
    missing_to: int | None = None

    @property
    def is_new(self) -> bool:
        """True for ``new`` and ``gap``: the payload itself is fresh and must be kept."""
        return self.kind != "duplicate"


NEW = SeqVerdict("new")
DUPLICATE = SeqVerdict("duplicate")

# How each kind is checked: the id field, and whether ids are contiguous.
_INCREASING_FIELD: dict[StreamKind, str] = {
    StreamKind.BOOK_TICKER: "u",
    StreamKind.PARTIAL_DEPTH: "lastUpdateId",
}


class StreamSequencer:
    """Sequence state of one stream. Not thread-safe; one per stream, fed in receive order.

    ``stream`` is a canonical stream name (``btcusdt@trade``); its kind decides the rule (module docstring).
    ``last_id`` optionally resumes from a known id (e.g. the last trade id written before a restart);
    ``None`` means the next payload is accepted as the start of the sequence.
    """

    __slots__ = ("_field", "_futures", "_recent", "check", "kind", "last_id", "stream")

    def __init__(self, stream: str, *, last_id: int | None = None) -> None:
        spec = parse_stream(stream)
        self.stream = spec.name
        self.kind = spec.kind
        #: last id seen (trade/agg/depth ``u``/bookTicker ``u``/partial ``lastUpdateId``), or last ``E``
        #: for event-time streams; ``None`` before the first payload.
        self.last_id: int | None = last_id
        self._recent: deque[tuple[int, Any]] = deque(maxlen=_RECENT)
        self._futures = spec.venue == "um"  # futures depth: continuity is pu == previous u
        #: classify ``payload`` (the decoded ``data`` of a frame) and advance the position; raises
        #: ``KeyError``/``TypeError`` when a sequenced payload lacks its id field. Bound once per stream, so
        #: the hot path makes one call and no mode dispatch.
        self.check: Callable[[Any], SeqVerdict]
        if spec.kind in TRADE_ID_FIELD:
            self.check, self._field = self._contiguous, TRADE_ID_FIELD[spec.kind]
        elif spec.kind is StreamKind.PARTIAL_DEPTH and spec.venue == "um":
            self.check, self._field = self._increasing, "u"
        elif spec.kind is StreamKind.DEPTH:
            self.check, self._field = self._depth, "u"
        elif spec.kind in _INCREASING_FIELD:
            self.check, self._field = self._increasing, _INCREASING_FIELD[spec.kind]
        else:
            self.check, self._field = self._event_time, "E"

    def reset(self) -> None:
        """Forget the position: the next payload starts a new sequence (e.g. after a resubscribe)."""
        self.last_id = None
        self._recent.clear()

    def _contiguous(self, payload: Any) -> SeqVerdict:
        i: int = payload[self._field]
        last = self.last_id
        if last is None or i == last + 1:
            self.last_id = i
            return NEW
        if i <= last:
            return DUPLICATE
        self.last_id = i
        return SeqVerdict("gap", last + 1, i - 1)

    def _depth(self, payload: Any) -> SeqVerdict:
        first: int = payload["U"]
        final: int = payload[self._field]
        last = self.last_id
        if last is None:
            self.last_id = final
            return NEW
        if final <= last:
            return DUPLICATE
        self.last_id = final
        if (payload["pu"] != last) if self._futures else (first > last + 1):
            return SeqVerdict("gap", last + 1, max(last + 1, first - 1))
        return NEW

    def _increasing(self, payload: Any) -> SeqVerdict:
        i = payload[self._field]
        last = self.last_id
        if last is None or i > last:
            self.last_id = i
            return NEW
        return DUPLICATE

    def _event_time(self, payload: Any) -> SeqVerdict:
        f = self._field
        if isinstance(payload, dict):
            e = payload.get(f)
        elif isinstance(payload, list) and payload and isinstance(payload[0], dict):
            e = payload[0].get(f)  # !miniTicker@arr and friends: every element carries the same E
        else:
            e = None
        if not isinstance(e, int):
            return NEW
        for seen_e, seen in self._recent:
            if seen_e == e and seen == payload:
                return DUPLICATE
        self._recent.append((e, payload))
        if self.last_id is None or e > self.last_id:
            self.last_id = e
        return NEW
