"""HTTP front-end protection: bind checks, the Host/Origin guard, and authentication.

* Binding a loopback address needs nothing; binding anything else requires authentication (a bearer token,
  ``BINANCE_MCP_AUTH_TOKEN``/``_FILE``, or OAuth, see :mod:`.oauth`) and, when the address binds every
  interface, the host names clients will use (``BINANCE_MCP_ALLOWED_HOSTS``). The decision is made on the
  addresses the host resolves to, never on its spelling (``0``, ``::0`` and ``0.0.0.0.`` all bind every
  interface): :func:`check_bind` refuses to start otherwise, with a message that says what to set.
* :class:`HostGuardMiddleware` is the DNS-rebinding protection, on every path (``/healthz`` included): the
  Host header must be an allowed name (case-insensitive; ``name:*`` allows ``name`` with any port or none,
  as behind a TLS proxy on 443), and an Origin header, when present, an allowed origin. 421 / 403 otherwise.
* :class:`BearerAuthMiddleware` requires a valid credential on every path but ``/healthz`` and the OAuth
  metadata document; ``/healthz`` answers only its status to a request without one.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from binance_common.settings import Settings

OPEN_PATHS = frozenset({"/healthz"})
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (scope) -> None when the request is authenticated, else (status, www-authenticate header, detail)
Authenticator = Callable[[Scope], Awaitable[tuple[int, str, str] | None]]


class StartupError(RuntimeError):
    """The HTTP front end must not start with this configuration; the message says what to change."""


def resolve(host: str) -> list[IPAddress]:
    """The addresses ``host`` binds to (an IP literal in any spelling, or a name); [] when it does not resolve."""
    h = host.strip().strip("[]")
    try:
        infos = socket.getaddrinfo(h or None, None, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError, ValueError):
        return []
    out: list[IPAddress] = []
    for info in infos:
        try:
            out.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
        except ValueError:
            continue
    return out


def is_loopback(host: str) -> bool:
    addrs = resolve(host)
    return bool(addrs) and all(a.is_loopback for a in addrs)


def is_wildcard(host: str) -> bool:
    return any(a.is_unspecified for a in resolve(host))


def auth_token(settings: Settings) -> str | None:
    tok = settings.auth_token.get_secret_value().strip() if settings.auth_token else ""
    return tok or None


def check_bind(settings: Settings, *, oauth: bool = False) -> None:
    """Refuse unsafe configurations: a non-loopback bind without authentication (or, when it binds every
    interface, without allowed host names)."""
    host = settings.http_host
    if is_loopback(host):
        return
    if auth_token(settings) is None and not oauth:
        raise StartupError(
            f"refusing to serve MCP on {host!r} without authentication: anyone who can reach this address could "
            "use it. Set BINANCE_MCP_AUTH_TOKEN (or BINANCE_MCP_AUTH_TOKEN_FILE) to a long random secret, "
            "configure OAuth (BINANCE_MCP_OAUTH_ISSUER), or bind 127.0.0.1."
        )
    if (is_wildcard(host) or not resolve(host)) and not settings.allowed_hosts:
        raise StartupError(
            f"binding {host!r} accepts requests for any host name; set BINANCE_MCP_ALLOWED_HOSTS to the "
            "Host header values clients use (e.g. mcp.example.com:*,10.0.0.5:*) so DNS-rebinding "
            "protection can check them."
        )


@dataclass(frozen=True)
class HostPolicy:
    """Allowed Host names (lower-case; ``any_port`` names match with or without a port) and Origins."""

    hosts: frozenset[str]  # exact "name:port" or "name"
    any_port: frozenset[str]  # "name" from "name:*"
    origins: frozenset[str]
    origin_any_port: frozenset[str]

    def host_ok(self, host: str | None) -> bool:
        if not host:
            return False
        h = host.strip().lower()
        if h in self.hosts:
            return True
        name = h.rsplit(":", 1)[0] if h.rsplit(":", 1)[-1].isdigit() and not h.endswith("]") else h
        return name in self.any_port

    def origin_ok(self, origin: str | None) -> bool:
        if not origin:
            return True  # same-origin requests carry none
        o = origin.strip().lower()
        if o in self.origins:
            return True
        base = o.rsplit(":", 1)[0] if o.rsplit(":", 1)[-1].isdigit() else o
        return base in self.origin_any_port


def host_policy(settings: Settings) -> HostPolicy:
    hosts: set[str] = set()
    any_port = {"127.0.0.1", "localhost", "[::1]"}
    host = settings.http_host.strip()
    if not is_loopback(host) and not is_wildcard(host):
        any_port.add(f"[{host.strip('[]')}]" if ":" in host.strip("[]") else host.lower())
    for h in settings.allowed_hosts:
        h = h.strip().lower()
        if h.endswith(":*"):
            any_port.add(h[:-2])
        else:
            hosts.add(h)
    origins: set[str] = set()
    origin_any: set[str] = set()
    for name in any_port:
        origin_any.update({f"http://{name}", f"https://{name}"})
    for h in hosts:
        origins.update({f"http://{h}", f"https://{h}"})
    return HostPolicy(frozenset(hosts), frozenset(any_port), frozenset(origins), frozenset(origin_any))


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """The SDK's own check is off: :class:`HostGuardMiddleware` does it (case-insensitive, port-less names,
    every path); the SDK still checks POST content types."""
    return TransportSecuritySettings(enable_dns_rebinding_protection=False)


async def _reply(send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers") or []:
        if k == name:
            return v.decode("latin-1")
    return None


class HostGuardMiddleware:
    """DNS-rebinding protection on every HTTP path (see the module docstring)."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if not self.policy.host_ok(_header(scope, b"host")):
                await _reply(send, 421, b'{"error":"invalid Host header","detail":"add it to BINANCE_MCP_ALLOWED_HOSTS"}')
                return
            if not self.policy.origin_ok(_header(scope, b"origin")):
                await _reply(send, 403, b'{"error":"invalid Origin header"}')
                return
        await self.app(scope, receive, send)


def static_token_authenticator(token: str) -> Authenticator:
    expected = f"Bearer {token}".encode()

    async def check(scope: Scope) -> tuple[int, str, str] | None:
        got = b""
        for k, v in scope.get("headers") or []:
            if k == b"authorization":
                got = v
                break
        if hmac.compare_digest(got, expected):
            return None
        return 401, 'Bearer realm="binance-mcp"', "send Authorization: Bearer <BINANCE_MCP_AUTH_TOKEN>"

    return check


def any_of(*checks: Authenticator) -> Authenticator:
    """Authenticated when any check accepts; otherwise the last check's refusal (the most specific one)."""

    async def check(scope: Scope) -> tuple[int, str, str] | None:
        refusal: tuple[int, str, str] | None = None
        for c in checks:
            refusal = await c(scope)
            if refusal is None:
                return None
        return refusal

    return check


class BearerAuthMiddleware:
    """Require a credential accepted by ``authenticate`` on every HTTP request except ``open_paths``."""

    def __init__(self, app: ASGIApp, authenticate: Authenticator, open_paths: frozenset[str] = OPEN_PATHS) -> None:
        self.app = app
        self.authenticate = authenticate
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.open_paths:
            await self.app(scope, receive, send)
            return
        refusal = await self.authenticate(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, challenge, detail = refusal
        body = b'{"error":"%s","detail":"%s"}' % (b"unauthorized" if status == 401 else b"forbidden",
                                                  detail.replace('"', "'").encode())
        await _reply(send, status, body, [(b"www-authenticate", challenge.encode())])
