"""The one reader of the feed the daemon keeps in Redis, for one replica: latest values and statuses, capped
histories, order books, health, the fresh values market tools answer from, and the account's user-data feed. Tools and resources share it;
it only reads (leases are written by :mod:`.leases`)."""

from __future__ import annotations

from .account import AccountReads
from .books import BookReads
from .fresh import FreshReads
from .health import HealthReads
from .history import HistoryReads
from .latest import LatestReads


class FeedReader(LatestReads, HistoryReads, BookReads, HealthReads, FreshReads, AccountReads):
    """Read-only access to the feed (see :class:`~.base.FeedBase` for the handles it holds)."""
