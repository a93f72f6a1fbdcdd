"""The one reader of the feed the daemon keeps in Redis, for one replica: latest values and statuses, capped
histories, order books, health, and the fresh values market tools answer from. Tools and resources share it;
it only reads (leases are written by :mod:`.leases`)."""

from __future__ import annotations

from .books import BookReads
from .fresh import FreshReads
from .health import HealthReads
from .history import HistoryReads
from .latest import LatestReads


class FeedReader(LatestReads, HistoryReads, BookReads, HealthReads, FreshReads):
    """Read-only access to the feed (see :class:`~.base.FeedBase` for the handles it holds)."""
