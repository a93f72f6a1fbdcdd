"""The feed's health: the daemon's heartbeat and figures, streams by state, leases (``get_feed_status``)."""

from __future__ import annotations

from typing import Any

import orjson

from binance_common.timeutil import now_ms

from ..answers.streams import FeedStatus, StreamProblem
from .base import FeedBase, integer, text


class HealthReads(FeedBase):
    # --- health ----------------------------------------------------------------------------------
    async def heartbeat(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        pipe = self.r.pipeline(transaction=False)
        pipe.get(self.keys.heartbeat)
        pipe.get(self.keys.daemon_stats)
        hb, stats = await pipe.execute()
        return _json_or_none(hb), _json_or_none(stats)

    async def daemon_alive(self) -> bool:
        return bool(await self.r.exists(self.keys.heartbeat))

    async def feed_status(self, *, embedded: bool, replica: str) -> FeedStatus:
        hb, stats = await self.heartbeat()
        now = now_ms()
        pipe = self.r.pipeline(transaction=False)
        pipe.zrangebyscore(self.keys.leases, now, "+inf")
        pipe.scard(self.keys.always_on)
        members, always_on = await pipe.execute()
        leased = {(text(m) or "").partition(" ")[0] for m in members}
        by_state: dict[str, int] = {}
        problems: list[StreamProblem] = []
        status_keys = [k async for k in self.r.scan_iter(match=self.keys.status_pattern, count=1000)]
        if status_keys:
            pipe = self.r.pipeline(transaction=False)
            for k in status_keys:
                pipe.hmget(k, "state", "reason")
            rows = await pipe.execute()
            for k, (state, reason) in zip(status_keys, rows, strict=True):
                st = text(state) or "unknown"
                by_state[st] = by_state.get(st, 0) + 1
                if st in ("failed", "pending") and len(problems) < 50:
                    stream = self.keys.stream_from_status_key(text(k) or "")
                    problems.append(StreamProblem(stream=stream, state=st, reason=text(reason)))
        hb_ts = integer((hb or {}).get("ts"))
        return FeedStatus(
            daemon_alive=hb is not None,
            heartbeat=hb,
            heartbeat_age_ms=max(0, now - hb_ts) if hb_ts else None,
            stats=summarize_stats(stats),
            streams_by_state=by_state,
            leased_streams=len(leased),
            leases=len(members),
            always_on=int(always_on or 0),
            problems=sorted(problems, key=lambda p: p.stream),
            embedded=embedded,
            replica=replica,
            redis_ok=True,
        )


def summarize_stats(stats: dict[str, Any] | None) -> dict[str, Any] | None:
    """The daemon's stats without the per-stream table (which grows with the stream count; per-stream figures
    are in each stream's status), with connection counts added."""
    if stats is None:
        return None
    out = {k: v for k, v in stats.items() if k != "streams"}
    per_stream = stats.get("streams")
    if isinstance(per_stream, dict):
        out["streams"] = len(per_stream)
    conns = stats.get("connections")
    if isinstance(conns, list):
        out["connections_up"] = sum(1 for c in conns if isinstance(c, dict) and c.get("up"))
    return out


def _json_or_none(blob: bytes | None) -> dict[str, Any] | None:
    if blob is None:
        return None
    try:
        v = orjson.loads(blob)
    except orjson.JSONDecodeError:
        return None
    return v if isinstance(v, dict) else {"value": v}


