"""Small asyncio helpers."""

from __future__ import annotations

import asyncio
import contextlib


async def cancel_and_wait(task: asyncio.Task[object], *, grace_s: float = 0.0, retry_s: float = 0.5) -> None:
    """Cancel ``task`` and wait for it to end, cancelling again if a cancellation was swallowed.

    On Python 3.11 a cancellation that lands while ``asyncio.timeout`` expires can be absorbed (redis-py
    reads pub/sub messages under such a timeout), which would leave a plain ``cancel(); await task`` hanging.
    ``grace_s``: first wait this long for the task to end by itself (after the caller set its stop flag).
    """
    if grace_s > 0 and not task.done():  # let a loop that checks a stop flag end on its own first
        await asyncio.wait([task], timeout=grace_s)
    while not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), retry_s)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
