"""Active/standby: at most one daemon writes a namespace, enforced by a fencing token.

A daemon leads while it holds ``daemon:leader`` (a token ``<epoch>:<host>:<pid>:<nonce>``, TTL
``heartbeat_ttl_s``), renewed every third of the TTL. A standby polls; when the key is gone (the leader died or
stalled past the TTL) it takes a new term: ``epoch`` + 1, a new token, and starts the feed by resuming from
what Redis holds. Every write of the leader checks the token inside Redis in the same script that writes
(:func:`fence_check` in the writer's batch script, :meth:`Leadership.execute` for everything else), so a
deposed leader that wakes up (SIGSTOP/SIGCONT, a long GC, a partition) cannot write: its scripts fail with
``FENCED`` and it steps down.

A leader whose key expired while nobody else took a term (e.g. Redis was unreachable longer than the TTL)
gets its own term back (``daemon:leader:last`` still names its token) and keeps its buffered data; so does a
leader whose Redis lost every key (restarted without persistence: no term was taken since, it continues under
a new token). A term taken by anyone else means everything held in memory is stale and the feed restarts
from Redis.

Without Lua (fakeredis in embedded mode: one process, nobody to fence) every daemon leads unfenced.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Sequence
from enum import Enum
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError

from binance_common.feedstore import parse_token
from binance_common.keys import Keys

log = logging.getLogger(__name__)

__all__ = ["Fenced", "Leadership", "Term", "fence_check", "is_fenced"]

# KEYS: leader, last, epoch. ARGV: ttl_ms, my token ('' when none), identity "<host>:<pid>:<nonce>".
# Returns {code, token}: 0 another daemon leads (its token), 1 renewed, 2 own term resumed, 3 new term.
_ACQUIRE_LUA = r"""
local cur = redis.call('GET', KEYS[1])
if cur then
  if cur == ARGV[2] then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    return {1, cur}
  end
  return {0, cur}
end
if ARGV[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
  return {2, ARGV[2]}
end
if ARGV[2] ~= '' and redis.call('EXISTS', KEYS[2]) == 0 and redis.call('EXISTS', KEYS[3]) == 0 then
  -- Redis lost its data (restarted without persistence): nobody led since; keep our term, new token
  local t = redis.call('INCR', KEYS[3]) .. ':' .. ARGV[3]
  redis.call('SET', KEYS[1], t, 'PX', ARGV[1])
  redis.call('SET', KEYS[2], t)
  return {2, t}
end
local tok = redis.call('INCR', KEYS[3]) .. ':' .. ARGV[3]
redis.call('SET', KEYS[1], tok, 'PX', ARGV[1])
redis.call('SET', KEYS[2], tok)
return {3, tok}
"""

# KEYS: leader. ARGV: token. Delete the leader key only if it still holds that token.
_RELEASE_DEAD_LUA = r"""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

def fence_check(at: int) -> str:
    """The fencing check every leader script starts with: ``ARGV[at]`` = leader key, ``ARGV[at + 1]`` = token
    ('' = unfenced). One snippet, so the writer's batch script and :meth:`Leadership.execute` check alike."""
    return (f"if ARGV[{at + 1}] ~= '' and redis.call('GET', ARGV[{at}]) ~= ARGV[{at + 1}] then\n"
            "  return redis.error_reply('FENCED this daemon no longer leads the namespace')\nend\n")


# ARGV: leader key, token, n commands, then per command: argc, args...
_EXECUTE_LUA = fence_check(1) + r"""
local i = 4
for _ = 1, tonumber(ARGV[3]) do
  local n = tonumber(ARGV[i])
  local args = {}
  for j = 1, n do args[j] = ARGV[i + j] end
  redis.call(unpack(args))
  i = i + n + 1
end
return 1
"""


class Term(Enum):
    FOLLOWER = 0  # another daemon leads
    RENEWED = 1
    RESUMED = 2  # our key had expired, nobody else led meanwhile: keep everything
    NEW = 3  # a new term: start from what Redis holds


class Fenced(Exception):
    """A write was refused because this daemon no longer holds the leadership token."""


def is_fenced(e: BaseException) -> bool:
    return isinstance(e, ResponseError) and str(e).startswith("FENCED")


class Leadership:
    def __init__(self, redis: aioredis.Redis, keys: Keys, ttl_s: float) -> None:
        self.r = redis
        self.keys = keys
        self.ttl_ms = max(1000, int(ttl_s * 1000))
        self.identity = f"{socket.gethostname().replace(':', '-')}:{os.getpid()}:{secrets.token_hex(3)}"
        self.token: str | None = None
        self.leader_token: str | None = None  # whoever leads, as last seen
        self.lua: bool | None = None  # None until probed; False = unfenced (no scripting)
        self.terms = 0
        self._acquire_sha: str | None = None
        self._execute_sha: str | None = None

    @property
    def fence(self) -> tuple[str, str]:
        """(leader key, token) for scripts; the token is '' when unfenced."""
        return self.keys.leader, (self.token or "") if self.lua else ""

    async def _load(self) -> bool:
        if self.lua is None:
            try:
                self._acquire_sha = await self.r.script_load(_ACQUIRE_LUA)
                self._execute_sha = await self.r.script_load(_EXECUTE_LUA)
                self.lua = True
            except ResponseError:
                self.lua = False
                log.info("no Lua scripting on this Redis: leadership is not fenced (single daemon)")
        return bool(self.lua)

    async def _evalsha(self, which: str, script: str, numkeys: int, *args: Any) -> Any:
        sha = self._acquire_sha if which == "acquire" else self._execute_sha
        try:
            return await self.r.evalsha(sha, numkeys, *args)  # type: ignore[arg-type]
        except NoScriptError:
            sha = await self.r.script_load(script)  # Redis restarted and forgot it
            if which == "acquire":
                self._acquire_sha = sha
            else:
                self._execute_sha = sha
            return await self.r.evalsha(sha, numkeys, *args)  # type: ignore[arg-type]

    async def acquire(self) -> Term:
        """Take, renew or resume the leadership if possible (Redis errors propagate)."""
        if not await self._load():
            if self.token is None:
                self.token = f"0:{self.identity}"
                self.terms += 1
                return Term.NEW
            return Term.RENEWED
        k = self.keys
        code, tok = await self._evalsha("acquire", _ACQUIRE_LUA, 3, k.leader, k.leader_last, k.leader_epoch,
                                        self.ttl_ms, self.token or "", self.identity)
        tok = tok.decode() if isinstance(tok, bytes) else str(tok)
        term = Term(int(code))
        if term is Term.FOLLOWER and self._holder_is_dead(tok):
            # the leader was this host's process and it is gone (kill -9, crash): no need to wait for the TTL
            log.warning("leadership: the leader (%s) is a dead process on this host; taking over", tok)
            await self.r.eval(_RELEASE_DEAD_LUA, 1, k.leader, tok)  # type: ignore[misc]
            code, tok = await self._evalsha("acquire", _ACQUIRE_LUA, 3, k.leader, k.leader_last, k.leader_epoch,
                                            self.ttl_ms, self.token or "", self.identity)
            tok = tok.decode() if isinstance(tok, bytes) else str(tok)
            term = Term(int(code))
        self.leader_token = tok
        if term is Term.FOLLOWER:
            self.token = None
        else:
            if term is Term.NEW:
                self.terms += 1
            self.token = tok
        return term

    def _holder_is_dead(self, token: str) -> bool:
        parts = parse_token(token)
        if parts is None or parts["host"] != self.identity.split(":")[0] or parts["pid"] == os.getpid():
            return False
        try:
            os.kill(parts["pid"], 0)
        except ProcessLookupError:
            return True
        except OSError:  # exists, not ours to signal
            return False
        return False

    async def release(self) -> None:
        """Give the leadership up at once (clean shutdown): a standby need not wait for the TTL."""
        if self.lua and self.token:
            await self.execute([["DEL", self.keys.leader]])
        self.token = None

    async def execute(self, commands: Sequence[Sequence[Any]]) -> None:
        """Run ``commands`` atomically if this daemon still leads; raise :class:`Fenced` otherwise."""
        if not commands:
            return
        if not self.lua:
            pipe = self.r.pipeline(transaction=False)
            for cmd in commands:
                pipe.execute_command(*cmd)
            await pipe.execute()
            return
        if self.token is None:
            raise Fenced("not the leader")
        args: list[Any] = [self.keys.leader, self.token, len(commands)]
        for cmd in commands:
            args.append(len(cmd))
            args.extend(cmd)
        try:
            await self._evalsha("execute", _EXECUTE_LUA, 0, *args)
        except ResponseError as e:
            if is_fenced(e):
                raise Fenced(str(e)) from e
            raise
