"""The Redis key schema: every key, channel, TTL and value layout both processes use. Nowhere else.

All keys live under ``<namespace>:v1:``. Stream names are validated (see :mod:`streams`) before they reach
this module, so they can be embedded in keys safely; symbols are upper-case.

Value layouts are defined, with their codec, in :mod:`binance_common.feedstore` (``latest:``, ``hist:``,
``status:``, ``book:``, ``daemon:leader``). The rest:

* ``leases`` ZSET: member ``<stream> <holder>``, score = expiry (ms since epoch).
* ``always_on`` SET of the daemon's configured streams.
* ``daemon:heartbeat`` STRING JSON (pid, host, started, ts) with TTL ``heartbeat_ttl_s``.
* ``daemon:standby:<host>:<pid>`` STRING JSON (pid, host, started, ts) with TTL: a daemon waiting to lead.
* ``leases:epoch`` STRING: present while Redis still holds the leases the front ends wrote; when it is
  missing (Redis lost its data) every front end re-asserts the leases it keeps in memory.
* ``daemon:writer`` STRING ``<writer id> <batch number>``: the last batch the leader's writer wrote (a batch
  sent again after a lost reply is not written twice).
* ``daemon:stats`` STRING JSON (connections, per-stream rates, lag, reconnects, buffer, dropped).
* channel ``updates``: payload = newline-joined names that changed (stream names, ``book:<SYMBOL>``).
* channel ``control``: payload ``reconcile`` (a replica changed leases: reconcile now).
* channel ``mcp:events``: MCP replicas' own resource events, fanned out to every replica (payload
  ``uri <resource uri>`` or ``list <tools|prompts|resources>``). Only binance-mcp reads and writes it.
* ``rl:weight:<epoch minute>`` INT (expires after 2 min), ``rl:ban_until`` / ``rl:retry_until`` (ms); the
  same under ``rl:fapi:`` for the USD-M futures API (its own budget), and ``rl:fdata:`` / ``rl:ffund:`` for the
  request-count limits of ``/futures/data/*`` and ``/fapi/v1/fundingRate``.
* ``rl:clock_offset`` INT, Binance server time minus local time (ms), for signed requests.
* ``acct:<account id>:<part>``: one account's user-data feed (layouts in :mod:`binance_common.accountstore`);
  the id is a digest of the API key (:func:`binance_common.signing.account_id`), never the key.
* ``cache:<name>`` STRING JSON with its own TTL: ``cache:exchange_info`` (compact exchangeInfo, TTL
  ``exchange_info_ttl_s``) and ``cache:exchange_info:lock`` (a 20 s NX lock so one replica refreshes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload

SCHEMA_VERSION = "v1"
LEASE_SEP = " "


class _Name:
    """A key that takes no argument, read as an attribute: ``heartbeat = _Name("daemon:heartbeat")`` gives
    ``Keys().heartbeat == "bnc:v1:daemon:heartbeat"``; a rate-limit name sits under ``rl:<rl_scope>``."""

    __slots__ = ("rate_limit", "suffix")

    def __init__(self, suffix: str, *, rate_limit: bool = False) -> None:
        self.suffix = suffix
        self.rate_limit = rate_limit

    @overload
    def __get__(self, keys: None, owner: type) -> _Name: ...
    @overload
    def __get__(self, keys: Keys, owner: type) -> str: ...
    def __get__(self, keys: Keys | None, owner: type) -> str | _Name:
        if keys is None:
            return self
        if self.rate_limit:
            return f"{keys.prefix}rl:{keys.rl_scope}{self.suffix}"
        return f"{keys.prefix}{self.suffix}"


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builder for one namespace. ``Keys("bnc").latest("btcusdt@trade") == "bnc:v1:latest:btcusdt@trade"``."""

    namespace: str = "bnc"
    rl_scope: str = ""
    """Prefix of the rate-limit keys inside ``rl:``: '' for spot (api.binance.com), ``fapi:`` for USD-M futures,
    whose weight budget Binance counts apart."""

    @property
    def prefix(self) -> str:
        return f"{self.namespace}:{SCHEMA_VERSION}:"

    def scoped(self, rl_scope: str) -> Keys:
        return Keys(self.namespace, rl_scope)

    # --- stream data -------------------------------------------------------------------------------
    def latest(self, stream: str) -> str:
        return f"{self.prefix}latest:{stream}"

    def history(self, stream: str) -> str:
        return f"{self.prefix}hist:{stream}"

    def status(self, stream: str) -> str:
        return f"{self.prefix}status:{stream}"

    def book(self, symbol: str) -> str:
        return f"{self.prefix}book:{symbol.upper()}"

    status_pattern = _Name("status:*")

    def stream_from_status_key(self, key: str) -> str:
        return key[len(self.prefix) + len("status:") :]

    # --- control plane -----------------------------------------------------------------------------
    leases = _Name("leases")
    leases_epoch = _Name("leases:epoch")
    always_on = _Name("always_on")
    heartbeat = _Name("daemon:heartbeat")
    leader = _Name("daemon:leader")
    leader_last = _Name("daemon:leader:last")
    leader_epoch = _Name("daemon:leader:epoch")
    standby_pattern = _Name("daemon:standby:*")
    daemon_stats = _Name("daemon:stats")
    writer_mark = _Name("daemon:writer")
    updates_channel = _Name("updates")
    control_channel = _Name("control")
    mcp_events_channel = _Name("mcp:events")

    @staticmethod
    def lease_member(stream: str, holder: str) -> str:
        if LEASE_SEP in holder or LEASE_SEP in stream:
            raise ValueError("lease holder and stream must not contain spaces")
        return f"{stream}{LEASE_SEP}{holder}"

    @staticmethod
    def split_lease_member(member: str) -> tuple[str, str]:
        stream, _, holder = member.partition(LEASE_SEP)
        return stream, holder

    def standby(self, member: str) -> str:
        return f"{self.prefix}daemon:standby:{member}"

    # --- REST rate limits and caches ---------------------------------------------------------------
    rl_ban_until = _Name("ban_until", rate_limit=True)
    rl_retry_until = _Name("retry_until", rate_limit=True)
    rl_clock_offset = _Name("clock_offset", rate_limit=True)

    def rl_weight(self, epoch_minute: int) -> str:
        return f"{self.prefix}rl:{self.rl_scope}weight:{epoch_minute}"

    def account(self, account_id: str, part: str) -> str:
        """``acct:<id>:events|balances|orders|fills|status`` (see :mod:`binance_common.accountstore`)."""
        return f"{self.prefix}acct:{account_id}:{part}"

    def cache(self, name: str) -> str:
        return f"{self.prefix}cache:{name}"


BOOK_UPDATE_PREFIX = "book:"
CONTROL_RECONCILE = "reconcile"
