"""The one codec for the Redis values both processes share (key *names* live in :mod:`keys`).

Value layouts, under ``<namespace>:v1:``:

* ``latest:<stream>`` STRING ``{"r": <receive ms>, "d": <raw payload JSON>}`` (payload verbatim).
* ``hist:<stream>`` Redis Stream (``XADD MAXLEN ~ history_maxlen``), two entry kinds in id order:
  data: ``d`` (raw payload JSON), ``r`` (receive ms) and ``b`` = ``1`` when the entry came from REST
  (catch-up or backfill) rather than the WebSocket;
  gap: ``g`` = ``{"from": <first missing id or null>, "to": <last missing id>, "reason": "..."}`` and ``r``:
  ids the daemon could not recover (too old, too many, endpoint unavailable). Never silent.
* ``status:<stream>`` HASH (:class:`StatusRecord`): ``state`` (:class:`StreamState`), ``reason``, ``conn``,
  ``since``, ``first_ack`` (ms of the first subscription acknowledgement while no id is stored), ``last_recv``,
  ``last_event``, ``msgs``, ``dups``, ``gaps_found``, ``gaps_filled``, ``gaps_unfilled``, ``ids_missing``,
  ``reconnects``, ``rate`` (msg/s), ``updated`` (ms).
* ``book:<SYMBOL>`` STRING JSON (:class:`BookValue`): ``{"symbol", "state", "since", "lastUpdateId", "E",
  "asof", "bids": [[p, q]..], "asks": [[p, q]..]}``. Only ``state == "live"`` is a usable book; while
  ``syncing`` (resyncing after a gap, reconnect or restart) or ``unsubscribed`` (nothing wants the book any
  more) the levels are empty and ``since`` says since when (ms).
* ``daemon:leader`` STRING: the leader's fencing token ``<epoch>:<host>:<pid>:<nonce>`` with TTL
  ``heartbeat_ttl_s``; ``daemon:leader:last`` the last token granted (no TTL); ``daemon:leader:epoch`` INT.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

import orjson

__all__ = [
    "F_BACKFILL",
    "F_DATA",
    "F_GAP",
    "F_RECV",
    "BookState",
    "BookValue",
    "DataEntry",
    "GapEntry",
    "StatusRecord",
    "StreamState",
    "book_marker",
    "decode_book",
    "decode_history",
    "decode_latest",
    "encode_gap",
    "encode_latest",
    "entry_last_id",
    "parse_token",
]

F_DATA, F_RECV, F_BACKFILL, F_GAP = "d", "r", "b", "g"


class StreamState(StrEnum):
    """What a stream's subscription is doing (``status:<stream>`` ``state``)."""

    PENDING = "pending"  # wanted, not acknowledged yet
    CATCHING_UP = "catching_up"  # acknowledged; the REST catch-up of a trade stream is being written
    LIVE = "live"
    FAILED = "failed"  # refused (reason says why); retried while still wanted


class BookState(StrEnum):
    LIVE = "live"
    SYNCING = "syncing"  # continuity not proven (after a start or reconnect, or a gap): do not use
    UNSUBSCRIBED = "unsubscribed"


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _field_map(raw: Mapping[Any, Any]) -> dict[str, Any]:
    return {_text(k): v for k, v in raw.items()}


# --- history entries ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DataEntry:
    payload: Any  # decoded JSON
    received_ms: int
    backfilled: bool


@dataclass(frozen=True, slots=True)
class GapEntry:
    from_id: int | None
    to_id: int
    reason: str
    received_ms: int


def encode_gap(from_id: int | None, to_id: int, reason: str) -> bytes:
    """The ``g`` field of a gap entry."""
    return orjson.dumps({"from": from_id, "to": to_id, "reason": reason})


def decode_history(raw_fields: Mapping[Any, Any]) -> DataEntry | GapEntry:
    """One ``hist:<stream>`` entry's fields (bytes or str keys) as a data or gap entry."""
    f = _field_map(raw_fields)
    recv = int(f.get(F_RECV) or 0)
    g = f.get(F_GAP)
    if g is not None:
        gap = orjson.loads(g)
        return GapEntry(gap.get("from"), int(gap["to"]), str(gap.get("reason") or ""), recv)
    return DataEntry(orjson.loads(f.get(F_DATA) or b"null"), recv, _text(f.get(F_BACKFILL) or "") == "1")


def entry_last_id(entry: DataEntry | GapEntry, id_field: str) -> int | None:
    """The last trade id an entry accounts for: the payload's ``id_field`` (``t``/``a``), or a gap's ``to``."""
    if isinstance(entry, GapEntry):
        return entry.to_id
    p = entry.payload
    v = p.get(id_field) if isinstance(p, dict) else None
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def encode_latest(recv_ms: int, payload: bytes) -> bytes:
    """``latest:<stream>``: the payload's JSON bytes embedded verbatim (never re-encoded)."""
    return b'{"r":%d,"d":' % recv_ms + payload + b"}"


def decode_latest(blob: bytes | str | None) -> tuple[int, Any] | None:
    """``latest:<stream>`` as (receive ms, payload), or None when absent or unreadable."""
    if blob is None:
        return None
    try:
        env = orjson.loads(blob)
        return int(env["r"]), env["d"]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


# --- books ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BookValue:
    symbol: str
    state: BookState
    since: int | None = None  # ms: when the book entered this state
    last_update_id: int | None = None
    event_time: int | None = None
    asof: int | None = None  # receive ms of the newest data in the book
    bids: list[list[str]] = field(default_factory=list)
    asks: list[list[str]] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.state is BookState.LIVE


def live_book_json(symbol: str, since: int | None, last_update_id: int, event_time: int | None,
                   asof: int | None, bids: list[list[str]], asks: list[list[str]]) -> bytes:
    return orjson.dumps({"symbol": symbol, "state": BookState.LIVE.value, "since": since,
                         "lastUpdateId": last_update_id, "E": event_time, "asof": asof, "bids": bids,
                         "asks": asks})


def book_marker(symbol: str, state: BookState, since: int) -> bytes:
    """A book that must not be used (syncing, unsubscribed): no levels, and since when."""
    return orjson.dumps({"symbol": symbol, "state": state.value, "since": since, "lastUpdateId": None,
                         "E": None, "asof": None, "bids": [], "asks": []})


def decode_book(blob: bytes | str | None) -> BookValue | None:
    """``book:<SYMBOL>``; a value without ``state`` (written before states existed) counts as live."""
    if blob is None:
        return None
    try:
        d = orjson.loads(blob)
        if not isinstance(d, dict):
            return None
        state = BookState(d.get("state") or BookState.LIVE.value)
        return BookValue(symbol=str(d["symbol"]), state=state, since=d.get("since"),
                         last_update_id=d.get("lastUpdateId"), event_time=d.get("E"), asof=d.get("asof"),
                         bids=list(d.get("bids") or []), asks=list(d.get("asks") or []))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


# --- stream status -------------------------------------------------------------------------------------
@dataclass(slots=True, kw_only=True)
class StreamCounters:
    """What the daemon counts for one stream (its ``datapath.Stream`` and the ``status:`` hash share these)."""

    first_ack: int = 0
    last_recv: int = 0
    last_event: int = 0
    msgs: int = 0
    dups: int = 0
    gaps_found: int = 0
    gaps_filled: int = 0
    gaps_unfilled: int = 0
    ids_missing: int = 0
    reconnects: int = 0


COUNTER_FIELDS = tuple(f.name for f in fields(StreamCounters))


@dataclass(slots=True, kw_only=True)
class StatusRecord(StreamCounters):
    """``status:<stream>``. Integers are ms or counts; ``rate`` is messages per second."""

    state: str = StreamState.PENDING.value
    reason: str = ""
    conn: str = ""
    since: int = 0
    rate: float = 0.0
    updated: int = 0

    def to_hash(self) -> dict[str, str | int | float]:
        return asdict(self)

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any] | None) -> StatusRecord | None:
        if not raw:
            return None
        f = _field_map(raw)
        out = cls()
        for fd in fields(cls):
            v = f.get(fd.name)
            if v is None:
                continue
            t = _text(v)
            try:
                if fd.type == "str":
                    setattr(out, fd.name, t)
                elif fd.type == "float":
                    setattr(out, fd.name, float(t))
                else:
                    setattr(out, fd.name, int(t) if t else 0)
            except ValueError:
                continue
        return out


# --- leadership -----------------------------------------------------------------------------------------
def parse_token(token: str | bytes | None) -> dict[str, Any] | None:
    """A fencing token ``<epoch>:<host>:<pid>:<nonce>`` as its parts (None when absent or foreign)."""
    if token is None:
        return None
    parts = _text(token).split(":")
    if len(parts) != 4 or not parts[0].isascii() or not parts[2].isascii():
        return None
    if not parts[0].isdigit() or not parts[2].isdigit():
        return None
    return {"epoch": int(parts[0]), "host": parts[1], "pid": int(parts[2]), "nonce": parts[3]}
