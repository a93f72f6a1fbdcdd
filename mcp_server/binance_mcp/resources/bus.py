"""Resource-update fan-out across replicas: a Redis-backed ``SubscriptionBus`` with per-URI throttling.

Two Redis channels feed every replica's bus:

* the daemon's ``updates`` channel (newline-joined stream names and ``book:<SYMBOL>``), mapped to resource
  URIs by :func:`~binance_mcp.resources.uris.uris_for_update`. Only URIs some local client listens to are kept
  (:meth:`RedisSubscriptionBus.add_interest`), so a replica with no listeners does almost no work;
* ``mcp:events``, where :meth:`RedisSubscriptionBus.publish` sends the events tools raise with
  ``ctx.notify_*``, so a listener on replica A hears what a tool ran on replica B.

Resource updates are throttled per URI (:class:`PerKeyThrottle`: at most one per ``throttle_s``, the
trailing edge always delivered), then handed synchronously to local listeners: the SDK's
``subscriptions/listen`` streams (2026-07-28) and the legacy ``resources/subscribe`` registry. Events are
level triggers ("changed, read again"), so coalescing loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import redis.asyncio as aioredis
from mcp.server.subscriptions import (
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
)

from binance_common.keys import Keys

from ..aio import cancel_and_wait
from .uris import FEED_STATUS_URI, uris_for_update

log = logging.getLogger(__name__)

Listener = Callable[[ServerEvent], None]
POLL_S = 0.25  # pub/sub read timeout: how soon the pump notices a stop request
_LIST_EVENTS: dict[str, ServerEvent] = {
    "tools": ToolsListChanged(),
    "prompts": PromptsListChanged(),
    "resources": ResourcesListChanged(),
}


class PerKeyThrottle:
    """Emit a key at most once per ``interval_s``; a key pushed during its quiet period is emitted once
    when the period ends (trailing edge), so the last change is never lost.

    ``clock`` and ``call_later`` are injectable so the timing is testable without an event loop.
    """

    def __init__(
        self,
        interval_s: float,
        emit: Callable[[str], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        call_later: Callable[[float, Callable[[], None]], Any] | None = None,
    ) -> None:
        self.interval_s = interval_s
        self._emit = emit
        self._clock = clock
        self._call_later = call_later
        self._quiet_until: dict[str, float] = {}
        self._pending: set[str] = set()

    def push(self, key: str) -> None:
        now = self._clock()
        until = self._quiet_until.get(key)
        if until is None or now >= until:
            self._quiet_until[key] = now + self.interval_s
            if len(self._quiet_until) > 50_000:
                self._prune(now)
            self._emit(key)
        elif key not in self._pending:
            self._pending.add(key)
            self._schedule(until - now, key)

    def _schedule(self, delay: float, key: str) -> None:
        if self._call_later is not None:
            self._call_later(delay, lambda: self._fire(key))
        else:
            asyncio.get_running_loop().call_later(delay, self._fire, key)

    def _fire(self, key: str) -> None:
        self._pending.discard(key)
        self._quiet_until[key] = self._clock() + self.interval_s
        self._emit(key)

    def _prune(self, now: float) -> None:
        for k in [k for k, t in self._quiet_until.items() if t <= now and k not in self._pending]:
            del self._quiet_until[k]


class RedisSubscriptionBus:
    """A :class:`mcp.server.subscriptions.SubscriptionBus` over Redis pub/sub (see the module docstring)."""

    def __init__(self, keys: Keys, *, throttle_s: float = 0.25, feed_poll_s: float = 5.0) -> None:
        self.keys = keys
        self.feed_poll_s = feed_poll_s
        self._listeners: dict[object, Listener] = {}
        self._interest: Counter[str] = Counter()
        self._throttle = PerKeyThrottle(throttle_s, self._emit_uri)
        self._redis: aioredis.Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self._tried = asyncio.Event()  # set after the first subscribe attempt, whatever its outcome
        self.delivered = 0
        self._feed_digest: str | None = None
        self._last_feed_poll = 0.0
        self._stopping = False
        self.epoch = 0
        self.update_hooks: list[Callable[[list[str]], None]] = []
        """Called with the names of every ``updates`` message (the feed reader's cache invalidation)."""

    @property
    def updates_epoch(self) -> int:
        """While the ``updates`` channel is subscribed, the number of this subscription (> 0); 0 otherwise.
        A cache filled under one subscription must not serve under the next (announcements may have been
        missed in between)."""
        return self.epoch if self.ready.is_set() else 0

    # --- SubscriptionBus protocol ----------------------------------------------------------------
    async def publish(self, event: ServerEvent) -> None:
        """Send ``event`` to every replica's listeners (through Redis), or locally when not started."""
        if isinstance(event, ResourceUpdated):
            payload = f"uri {event.uri}"
        else:
            name = next(k for k, v in _LIST_EVENTS.items() if v == event)
            payload = f"list {name}"
        if self._redis is None:
            self._on_events_message(payload.encode())
            return
        await self._redis.publish(self.keys.mcp_events_channel, payload)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        token = object()
        self._listeners[token] = listener

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe

    # --- interest --------------------------------------------------------------------------------
    def add_interest(self, uris: Iterable[str]) -> None:
        """Forward daemon updates for these (canonical) URIs; reference-counted."""
        self._interest.update(uris)

    def remove_interest(self, uris: Iterable[str]) -> None:
        self._interest.subtract(uris)
        for u in [u for u, n in self._interest.items() if n <= 0]:
            del self._interest[u]

    def interested(self, uri: str) -> bool:
        return self._interest.get(uri, 0) > 0

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self, redis: aioredis.Redis, *, wait_s: float = 5.0) -> None:
        """Subscribe to the channels: returns once subscribed, at once if Redis refused (the pump keeps
        retrying in the background), or after ``wait_s``."""
        self._redis = redis
        self._stopping = False
        if self._task is None:
            self._task = asyncio.create_task(self._pump(), name="binance-mcp-subscription-bus")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._tried.wait(), wait_s)

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            await cancel_and_wait(self._task, grace_s=POLL_S + 0.2)
            self._task = None
        self._stopping = False
        self._redis = None
        self.ready.clear()
        self._tried.clear()

    async def _pump(self) -> None:
        assert self._redis is not None
        backoff = 0.1
        updates, events = self.keys.updates_channel.encode(), self.keys.mcp_events_channel.encode()
        while not self._stopping:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(updates, events)
                self.epoch += 1
                self.ready.set()
                self._tried.set()
                backoff = 0.1
                while not self._stopping:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_S)
                    if msg is not None and msg.get("type") == "message":
                        channel = msg["channel"]
                        channel = channel if isinstance(channel, bytes) else str(channel).encode()
                        data = msg["data"]
                        data = data if isinstance(data, bytes) else str(data).encode()
                        if channel == updates:
                            self._on_updates_message(data)
                        else:
                            self._on_events_message(data)
                    await self._maybe_poll_feed()
            except asyncio.CancelledError:
                raise
            except (aioredis.RedisError, OSError) as e:
                self.ready.clear()
                self._tried.set()
                log.warning("subscription bus lost Redis (%s); resubscribing in %.1f s", e, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    # --- message handling ------------------------------------------------------------------------
    def _on_updates_message(self, data: bytes) -> None:
        if self.update_hooks:
            names = [n for n in data.decode(errors="replace").split("\n") if n]
            for hook in self.update_hooks:
                hook(names)
        if not self._interest:
            return
        for raw in data.split(b"\n"):
            name = raw.decode(errors="replace").strip()
            if not name:
                continue
            for uri in uris_for_update(name):
                if uri in self._interest:
                    self._throttle.push(uri)

    def _on_events_message(self, data: bytes) -> None:
        kind, _, value = data.decode(errors="replace").partition(" ")
        if kind == "uri" and value:
            self._throttle.push(value)
        elif kind == "list" and value in _LIST_EVENTS:
            self._deliver(_LIST_EVENTS[value])

    def _emit_uri(self, uri: str) -> None:
        self._deliver(ResourceUpdated(uri=uri))

    def _deliver(self, event: ServerEvent) -> None:
        self.delivered += 1
        for listener in list(self._listeners.values()):
            try:
                listener(event)
            except Exception:  # fan-out boundary: one bad listener must not starve the others
                log.exception("subscription listener raised; continuing")

    async def _maybe_poll_feed(self) -> None:
        """Announce ``binance://feed/status`` when the daemon's stats change (only while someone listens)."""
        if not self.interested(FEED_STATUS_URI) or self._redis is None:
            return
        now = time.monotonic()
        if now - self._last_feed_poll < self.feed_poll_s:
            return
        self._last_feed_poll = now
        blob = await self._redis.get(self.keys.daemon_stats)
        raw = blob.encode() if isinstance(blob, str) else (blob or b"")
        digest = hashlib.blake2b(raw, digest_size=8).hexdigest()
        if self._feed_digest is not None and digest != self._feed_digest:
            self._throttle.push(FEED_STATUS_URI)
        self._feed_digest = digest
