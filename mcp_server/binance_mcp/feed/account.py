"""One account's user-data feed as the daemon keeps it (``acct:<id>:...``, layouts in
:mod:`binance_common.accountstore`): the streamed balances with the stream's status, and the event history."""

from __future__ import annotations

from typing import Any

from .base import FeedBase, id_tuple, text


class AccountReads(FeedBase):
    async def account_balances(self, account: str) -> tuple[Any, dict[str, str]]:
        """(``balances`` value or None, ``status`` hash) in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        pipe.get(self.keys.account(account, "balances"))
        pipe.hgetall(self.keys.account(account, "status"))
        raw, status = await pipe.execute()
        return raw, {str(text(k)): str(text(v)) for k, v in (status or {}).items()}

    async def account_events(self, account: str, *, after_id: str | None, limit: int,
                             wait_s: float) -> tuple[list[Any], bool, dict[str, str]]:
        """(entries oldest first, trimmed, status): the last ``limit`` entries, or those after ``after_id``
        (waiting up to ``wait_s`` for one); ``trimmed`` when ``after_id`` is older than the oldest entry kept."""
        key = self.keys.account(account, "events")
        if after_id is None:
            rows = list(reversed(await self.r.xrevrange(key, count=limit) or []))
        else:
            rows = list(await self.r.xrange(key, min="(" + after_id, count=limit) or [])
            if not rows and wait_s > 0:
                await self.wait_for_entry(key, after_id, wait_s)
                rows = list(await self.r.xrange(key, min="(" + after_id, count=limit) or [])
        trimmed = False
        if after_id is not None:
            first: Any = await self.r.xrange(key, count=1)
            trimmed = bool(first) and id_tuple(first[0][0]) > id_tuple(after_id) != (0, 0)
        _raw, status = await self.account_balances(account)
        return rows, trimmed, status
