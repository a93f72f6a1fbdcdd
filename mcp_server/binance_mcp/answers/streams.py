"""Answers of the stream tools and resources (the JSON agents see): subscriptions, latest values, histories,
feed health. Prices are exact decimal strings; every answer built from stream data nests a Freshness. The
live order book is in :mod:`.book`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .provenance import Freshness
from .respond import LiveAnswer, Series


class StreamStatus(BaseModel):
    """The feed daemon's view of one stream (``status:<stream>``)."""

    state: str = Field(description="pending, catching_up, live, failed, or not_subscribed.")
    reason: str | None = None
    since_ms: int | None = Field(None, description="When the stream entered its current state, ms.")
    last_recv_ms: int | None = Field(None, description="When the last message arrived, ms.")
    msgs: int | None = Field(None, description="Messages received since the daemon subscribed.")
    gaps_found: int | None = None
    gaps_filled: int | None = None
    reconnects: int | None = None
    connection: str | None = None


class StreamLatest(LiveAnswer):
    """The latest message of a stream."""

    stream: str
    data: Any = Field(
        None,
        description="The message: decoded to readable field names (exact decimal strings) unless raw was "
        "asked for or decoding failed; null when there is no data yet.",
    )
    decoded: bool = Field(description="True when data uses readable field names, false when it is Binance's raw JSON.")
    freshness: Freshness


class SubscriptionOutcome(BaseModel):
    stream: str
    state: str = Field(description="live, failed, or pending (the wait ran out).")
    reason: str | None = None
    freshness: Freshness


class SubscribeResult(LiveAnswer):
    subscriptions: list[SubscriptionOutcome]
    live: int
    failed: int
    pending: int
    holder: str = Field(description="The lease holder these subscriptions are recorded under.")
    scope: Literal["process", "session", "pool"] = Field(
        description="process: held while this server process runs (stdio); session: held while this "
        "HTTP/SSE session is open; pool: stateless HTTP, held while any replica runs and until released."
    )
    lease_ttl_s: float
    daemon_alive: bool
    waited_ms: int
    note: str | None = None


class UnsubscribeResult(LiveAnswer):
    released: list[str] = Field(description="Streams whose lease (under this caller's holder) was removed.")
    not_held: list[str] = Field(description="Streams this caller did not hold.")
    still_wanted_by_others: list[str] = Field(
        description="Released streams that other holders (or the daemon's always-on list) still keep."
    )
    holder: str
    scope: Literal["process", "session", "pool"]


class SubscriptionInfo(BaseModel):
    stream: str
    yours: bool = Field(description="True when this caller's holder has a lease on it.")
    holders: int = Field(description="Number of unexpired leases on the stream.")
    always_on: bool = Field(description="True when the daemon's own config keeps the stream.")
    lease_expires_ms: int | None = Field(None, description="Latest lease expiry, ms (renewed while held).")
    status: StreamStatus
    freshness: Freshness


class SubscriptionList(LiveAnswer):
    subscriptions: list[SubscriptionInfo]
    total: int
    truncated: bool
    holder: str
    scope: Literal["process", "session", "pool"]


class GapInfo(BaseModel):
    from_id: int | None = Field(description="First missing trade id (null: unknown, older than REST could reach).")
    to_id: int = Field(description="Last missing trade id.")
    reason: str = Field(description="Why these ids could not be recovered.")


class HistoryEntry(BaseModel):
    cursor: str = Field(description="Pass as `since` to read the entries after this one.")
    received_ms: int
    source: Literal["ws", "rest", "gap"] = Field(
        description="ws: live; rest: recovered from Binance REST (a catch-up after a reconnect or restart, or a "
        "backfilled gap); gap: ids the feed could not recover (see `gap`), never left silent."
    )
    data: Any
    gap: GapInfo | None = Field(None, description="Set on gap entries: the missing trade ids and why.")


class StreamHistory(LiveAnswer, Series):
    stream: str
    entries: list[HistoryEntry] = Field(description="Oldest first (empty with compact=true: see rows).")
    columns: list[str] | None = Field(
        None, description="With compact=true: names of the values in each row (cursor, received_ms, source, gap, "
        "then the message's fields)."
    )
    rows: list[list[Any]] | None = Field(None, description="With compact=true: one entry per row, oldest first.")
    next_cursor: str | None = Field(
        description="Cursor to pass as `since` next time (the last entry returned, or the stream's end)."
    )
    missed: int | None = Field(
        description="Entries after `since` that the history cap trimmed before they were read "
        "(0 when none; null when it cannot be known, e.g. a bare Redis id cursor that was trimmed)."
    )
    retained: int = Field(description="Entries the capped history holds now.")
    cap: int = Field(description="Approximate cap of the history (history_maxlen).")
    waited_ms: int = Field(description="How long the call waited for new entries.")
    freshness: Freshness


class FeedStatus(LiveAnswer):
    daemon_alive: bool = Field(description="True when the daemon's heartbeat key exists (it has a TTL).")
    heartbeat: dict[str, Any] | None = Field(None, description="pid, host, started, ts of the daemon.")
    heartbeat_age_ms: int | None = None
    stats: dict[str, Any] | None = Field(
        None, description="The daemon's own figures: connections, per-stream rates, lag, reconnects, buffer."
    )
    streams_by_state: dict[str, int]
    leased_streams: int
    leases: int
    always_on: int
    problems: list[StreamProblem] = Field(description="Streams that are failed or pending (at most 50).")
    embedded: bool = Field(description="True when the feed runs inside this process over in-memory Redis.")
    replica: str
    redis_ok: bool


class StreamProblem(BaseModel):
    stream: str
    state: str
    reason: str | None = None


FeedStatus.model_rebuild()


ENTRY_COLUMNS = ["cursor", "received_ms", "source", "gap"]


def compact_history(entries: list[HistoryEntry]) -> tuple[list[str], list[list[Any]]]:
    """History entries as columns and rows: the entry's own fields, then every field of the messages (in
    the order first seen; a message that is not an object goes under ``data``)."""
    fields: dict[str, None] = {}
    for e in entries:
        if isinstance(e.data, dict):
            fields.update(dict.fromkeys(e.data))
        elif e.data is not None:
            fields["data"] = None
    names = list(fields)
    rows = []
    for e in entries:
        d = e.data if isinstance(e.data, dict) else ({"data": e.data} if e.data is not None else {})
        gap = e.gap.model_dump() if e.gap is not None else None
        rows.append([e.cursor, e.received_ms, e.source, gap, *(d.get(n) for n in names)])
    return ENTRY_COLUMNS + names, rows
