"""Pure rate limiting and backoff: control messages per connection, connection attempts, reconnect delays."""

from __future__ import annotations

import asyncio
import random
from collections import deque
from dataclasses import dataclass, field


@dataclass
class SlidingWindow:
    """At most ``limit`` events in any ``window_s`` seconds. ``delay(now)`` says how long to wait first."""

    limit: int
    window_s: float
    times: deque[float] = field(default_factory=deque)

    def delay(self, now: float) -> float:
        while self.times and now - self.times[0] >= self.window_s:
            self.times.popleft()
        if len(self.times) < self.limit:
            return 0.0
        return self.times[0] + self.window_s - now

    def record(self, now: float) -> None:
        self.times.append(now)


@dataclass
class Backoff:
    """Exponential backoff with full jitter and a cap.

    ``reset_if_healthy(lived_s)`` resets only after a connection that stayed up ``healthy_after_s``: a venue
    that accepts and then closes at once keeps backing off instead of causing a hot reconnect loop.
    """

    base_s: float = 0.5
    cap_s: float = 30.0
    healthy_after_s: float = 10.0
    min_s: float = 0.1
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * (2 ** self.attempt))
        self.attempt += 1
        return max(self.min_s, self.rng.uniform(0, ceiling))

    def reset_if_healthy(self, lived_s: float) -> None:
        if lived_s >= self.healthy_after_s:
            self.attempt = 0


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait for ``event`` at most ``timeout_s``; True when it is set. (``asyncio.timeout`` rather than
    ``wait_for``: no inner task, so a cancellation of the caller is never lost in between.)"""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True
