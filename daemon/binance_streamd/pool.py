"""The connection pool: streams spread over connections, reconnects with backoff, rotation without a gap.

* Each stream lives on one *slot*; a slot holds at most ``max_per_conn`` streams and owns one live
  connection at a time.
* A slot whose connection dies reconnects after a jittered, capped backoff (no hot loop after connections
  that die right after opening), re-subscribing its streams. Connection attempts across the pool stay
  under 300 per 5 minutes.
* Rotation (age >= ``lifetime_s``, or ``serverShutdown``): the slot opens a replacement, subscribes the
  same streams, switches when the replacement delivers data (or after a bound), then closes the old one.
  Both connections feed the daemon meanwhile; the per-stream sequencers drop the overlap's duplicates.
* Watchdog: a connection with subscribed streams that delivered nothing for ``stale_after_s`` is aborted
  and reconnected (separate from pings, which only prove the socket is alive), unless every stream on it
  may be quiet (``may_be_quiet``: trades, diff books, bookTicker on a calm pair) and Binance, asked with
  ``LIST_SUBSCRIPTIONS``, answers in time and still lists every one of them: then it is a calm market, not a
  dead connection, and reconnecting (then catching up and resyncing books) every minute would only cost
  weight. The question is asked again after each further ``stale_after_s`` of silence.
* A refused SUBSCRIBE batch never holds other streams back: its names are handed to the :class:`Prober`,
  which finds the refused ones on its own connection (its own control budget), while the slot goes on
  subscribing everything else; the good names of the batch follow as soon as they are known.

Callbacks to the daemon: ``on_live(streams, conn_id)`` after every acknowledgement (also on a rotation's new
connection), ``on_lost(streams, reason)`` as soon as a connection ends other than by rotation (its streams
missed whatever came until the next acknowledgement), ``on_error(streams, reason)`` when a connection
attempt fails, ``on_failed(streams, reason)`` for names Binance refuses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .connection import ACK_TIMEOUT_S, OnData, SubscribeError, WsConnection
from .limits import Backoff, SlidingWindow
from .prober import Prober

log = logging.getLogger(__name__)

OnFailed = Callable[[list[str], str], None]
OnLive = Callable[[list[str], int], None]


@dataclass
class Slot:
    id: int
    streams: set[str] = field(default_factory=set)
    conn: WsConnection | None = None
    backoff: Backoff = field(default_factory=Backoff)
    task: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    rotate: bool = False
    probing: set[str] = field(default_factory=set)  # names of a refused batch the prober is sorting out
    reconnects: int = 0
    rotations: int = 0
    calm_checks: int = 0  # silent spells Binance confirmed as a calm market (LIST_SUBSCRIPTIONS)


class Pool:
    def __init__(self, ws_url: str, on_data: OnData, on_failed: OnFailed, on_live: OnLive, *,
                 max_per_conn: int, lifetime_s: float, stale_after_s: float, max_delay_s: float,
                 proxy: str | None = None, on_malformed: Callable[[WsConnection, bytes | str], None] | None = None,
                 on_lost: OnFailed | None = None, on_error: OnFailed | None = None,
                 backpressure: Any = None, may_be_quiet: Callable[[str], bool] | None = None) -> None:
        self.ws_url = ws_url
        self.may_be_quiet = may_be_quiet  # a stream (as this pool names it) Binance sends only on events
        self.on_data = on_data
        self.on_failed = on_failed
        self.on_live = on_live
        self.on_malformed = on_malformed
        self.on_lost = on_lost
        self.on_error = on_error
        self.backpressure = backpressure
        self.max_per_conn = max_per_conn
        self.lifetime_s = lifetime_s
        self.stale_after_s = stale_after_s
        self.max_delay_s = max_delay_s
        self.proxy = proxy
        self.slots: list[Slot] = []
        self.attempts = SlidingWindow(300, 300.0)
        self.connects = 0
        self._closing = False
        self._slot_ids = 0
        self._probes: set[asyncio.Task[None]] = set()
        self.prober = Prober(self._open_probe)

    # --- assignment ----------------------------------------------------------------------------------
    def slot_of(self, stream: str) -> Slot | None:
        for s in self.slots:
            if stream in s.streams:
                return s
        return None

    def add(self, streams: list[str]) -> None:
        for stream in streams:
            if self.slot_of(stream) is not None:
                continue
            slot = next((s for s in self.slots if len(s.streams) < self.max_per_conn), None)
            if slot is None:
                self._slot_ids += 1
                slot = Slot(self._slot_ids, backoff=Backoff(cap_s=self.max_delay_s))
                self.slots.append(slot)
                slot.task = asyncio.create_task(self._run_slot(slot), name=f"slot-{slot.id}")
            slot.streams.add(stream)
            slot.wake.set()

    def remove(self, streams: list[str]) -> None:
        for stream in streams:
            slot = self.slot_of(stream)
            if slot is not None:
                slot.streams.discard(stream)
                slot.wake.set()

    def connections(self) -> list[WsConnection]:
        return [s.conn for s in self.slots if s.conn is not None]

    def request_rotation(self, conn: WsConnection | None = None) -> None:
        for s in self.slots:
            if conn is None or s.conn is conn:
                s.rotate = True
                s.wake.set()

    async def close(self) -> None:
        self._closing = True
        for t in list(self._probes):
            t.cancel()
        await self.prober.close()
        for s in self.slots:
            s.wake.set()
            if s.task is not None:
                s.task.cancel()
        tasks = [s.task for s in self.slots if s.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=3.0)
        for s in self.slots:
            if s.conn is not None:
                await s.conn.close("daemon stopping")

    # --- one slot ------------------------------------------------------------------------------------
    async def _open_probe(self) -> WsConnection:
        """A connection for the prober (counted against the connection-attempt budget like any other)."""
        wait = self.attempts.delay(time.monotonic())
        if wait > 0:
            await asyncio.sleep(wait)
        self.attempts.record(time.monotonic())
        self.connects += 1
        conn = WsConnection(self.ws_url, lambda *_: None, proxy=self.proxy)
        await conn.open()
        return conn

    async def _connect(self, slot: Slot) -> WsConnection:
        while True:
            wait = self.attempts.delay(time.monotonic())
            if wait > 0:
                log.warning("connection attempt budget used (300 per 5 min); waiting %.1f s", wait)
                await asyncio.sleep(wait)
                continue
            self.attempts.record(time.monotonic())
            self.connects += 1
            conn = WsConnection(self.ws_url, self.on_data, proxy=self.proxy,
                                on_shutdown=lambda c: self.request_rotation(c), on_malformed=self.on_malformed,
                                backpressure=self.backpressure)
            try:
                await conn.open()
                return conn
            except Exception as e:
                delay = slot.backoff.next_delay()
                log.warning("slot %d: connect failed (%s: %s); retry in %.2f s", slot.id, type(e).__name__, e, delay)
                if self.on_error is not None:
                    self.on_error(sorted(slot.streams), f"cannot connect to {self.ws_url}: {type(e).__name__}: {e}")
                await asyncio.sleep(delay)

    async def _sync(self, slot: Slot, conn: WsConnection) -> None:
        """Make ``conn``'s subscriptions equal the slot's streams (but names the prober is sorting out)."""
        want = set(slot.streams)
        extra = sorted(conn.streams - want)
        if extra:
            await conn.unsubscribe(extra)
        missing = sorted(want - conn.streams - slot.probing)
        if missing:
            await self._subscribe(slot, conn, missing)

    async def _subscribe(self, slot: Slot, conn: WsConnection, streams: list[str]) -> None:
        try:
            await conn.subscribe(streams)
            self.on_live(streams, conn.id)
        except SubscribeError as e:
            acked = [s for s in streams if s in conn.streams]
            if acked:
                self.on_live(acked, conn.id)
            if conn.closed.is_set() or e.reason.startswith("no answer"):
                raise
            if len(e.streams) == 1:
                self._refuse(slot, {e.streams[0]: e.reason})
            else:  # sort the batch out on the prober's connection; the slot carries on meanwhile
                slot.probing.update(e.streams)
                t = asyncio.create_task(self._probe(slot, list(e.streams)), name=f"probe-slot-{slot.id}")
                self._probes.add(t)
                t.add_done_callback(self._probes.discard)
            slot.wake.set()  # the names after the refused batch were not sent yet

    def _refuse(self, slot: Slot, refused: dict[str, str]) -> None:
        for s, reason in refused.items():
            slot.streams.discard(s)
            self.on_failed([s], reason)

    async def _probe(self, slot: Slot, streams: list[str]) -> None:
        try:
            refused = await self.prober.refused(streams)
        except Exception as e:  # the probe connection failed: the names go back to the slot as they were
            log.warning("slot %d: probing %d names failed (%s)", slot.id, len(streams), e)
            refused = {}
        finally:
            slot.probing.difference_update(streams)
            slot.wake.set()
        self._refuse(slot, refused)

    async def _run_slot(self, slot: Slot) -> None:
        first = True
        while not self._closing:
            if not slot.streams:
                if slot.conn is not None:
                    await slot.conn.close("no streams")
                    slot.conn = None
                slot.wake.clear()
                await slot.wake.wait()
                continue
            if slot.conn is None:
                conn = await self._connect(slot)
                if not first:
                    slot.reconnects += 1
                first = False
                slot.conn = conn
                try:
                    await self._sync(slot, conn)
                except SubscribeError:
                    pass
            conn = slot.conn
            await self._supervise(slot, conn)
            if self._closing:
                return
            if slot.conn is conn and conn.closed.is_set():  # it died (a rotation replaces slot.conn)
                slot.conn = None
                if self.on_lost is not None:
                    self.on_lost(sorted(slot.streams), conn.close_reason)
                slot.backoff.reset_if_healthy(conn.age_s)
                delay = slot.backoff.next_delay()
                log.warning("slot %d: connection %d ended (%s) after %.1f s; reconnect in %.2f s",
                            slot.id, conn.id, conn.close_reason, conn.age_s, delay)
                await asyncio.sleep(delay)

    async def _supervise(self, slot: Slot, conn: WsConnection) -> None:
        """Watch one live connection until it dies; handle stream changes, rotation and staleness."""
        proven = 0.0  # when Binance last said this quiet connection still carries its streams
        while not self._closing:
            slot.wake.clear()
            try:
                await asyncio.wait_for(_first(slot.wake.wait(), conn.closed.wait()), 1.0)
            except TimeoutError:
                pass
            if conn.closed.is_set():
                return
            if slot.streams != conn.streams:
                try:
                    await self._sync(slot, conn)
                except SubscribeError:
                    pass
            if slot.rotate or conn.age_s >= self.lifetime_s:
                slot.rotate = False
                if await self._rotate(slot, conn):
                    return
            if conn.streams and time.monotonic() - max(conn.last_data, proven) > self.stale_after_s:
                if await self._calm_not_dead(slot, conn):
                    proven = time.monotonic()
                    continue
                log.warning("slot %d: no data for %.0f s on conn %d; reconnecting", slot.id,
                            self.stale_after_s, conn.id)
                conn.abort("stale")
                await conn.close("stale")
                return

    async def _calm_not_dead(self, slot: Slot, conn: WsConnection) -> bool:
        """True when every stream of the silent ``conn`` may be quiet and Binance answers, in time, that the
        connection still carries all of them."""
        if self.may_be_quiet is None or not all(self.may_be_quiet(s) for s in conn.streams):
            return False
        listed = await conn.list_subscriptions(timeout=min(ACK_TIMEOUT_S, self.stale_after_s))
        if listed is None:
            return False
        if missing := conn.streams - listed:
            log.warning("slot %d: Binance no longer lists %s on conn %d", slot.id, sorted(missing)[:5], conn.id)
            return False
        slot.calm_checks += 1
        return True

    async def _rotate(self, slot: Slot, old: WsConnection) -> bool:
        """Open a replacement with the same streams; switch once it delivers. True when switched."""
        log.info("slot %d: rotating connection %d (age %.0f s)", slot.id, old.id, old.age_s)
        new = await self._connect(slot)
        died_early = old.closed.is_set()
        if died_early and self.on_lost is not None:  # it died before the new one took over
            self.on_lost(sorted(slot.streams), old.close_reason)
        try:
            await self._sync(slot, new)
        except SubscribeError:
            await new.close("rotation failed")
            return False
        if not died_early and old.closed.is_set() and self.on_lost is not None:
            # it died while the new one subscribed: what came in between is on neither; catch up from the ack
            streams = sorted(new.streams)
            self.on_lost(streams, old.close_reason)
            self.on_live(streams, new.id)
        frames0 = new.frames
        deadline = time.monotonic() + min(10.0, self.stale_after_s)
        while new.frames == frames0 and time.monotonic() < deadline and not new.closed.is_set():
            await asyncio.sleep(0.02)
        slot.conn = new
        slot.rotations += 1
        await old.close("rotated")
        return True


async def _first(*aws: object) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
