"""HTTP front-end protection: bind checks, DNS-rebinding settings, and an optional bearer token.

* Binding a loopback address needs nothing; binding anything else requires a bearer token
  (``BINANCE_MCP_AUTH_TOKEN`` or ``BINANCE_MCP_AUTH_TOKEN_FILE``) and, for wildcard binds, the host names
  clients will use (``BINANCE_MCP_ALLOWED_HOSTS``): :func:`check_bind` refuses to start otherwise, with a
  message that says what to set.
* :func:`transport_security` builds the SDK's DNS-rebinding protection (Host and Origin allow-lists).
* :class:`BearerAuthMiddleware` checks ``Authorization: Bearer <token>`` in constant time on every path but
  the health check.
"""

from __future__ import annotations

import hmac
import ipaddress

from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from binance_common.settings import Settings

OPEN_PATHS = frozenset({"/healthz"})
_WILDCARDS = ("0.0.0.0", "::", "")


class StartupError(RuntimeError):
    """The HTTP front end must not start with this configuration; the message says what to change."""


def is_loopback(host: str) -> bool:
    h = host.strip().strip("[]")
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def auth_token(settings: Settings) -> str | None:
    tok = settings.auth_token.get_secret_value().strip() if settings.auth_token else ""
    return tok or None


def check_bind(settings: Settings) -> None:
    """Refuse unsafe configurations: a non-loopback bind without a token (or, for wildcard binds, without
    allowed host names)."""
    host = settings.http_host
    if is_loopback(host):
        return
    if auth_token(settings) is None:
        raise StartupError(
            f"refusing to serve MCP on {host!r} without authentication: anyone who can reach this address could "
            "use it. Set BINANCE_MCP_AUTH_TOKEN (or BINANCE_MCP_AUTH_TOKEN_FILE) to a long random secret, "
            "or bind 127.0.0.1."
        )
    if host.strip().strip("[]") in _WILDCARDS and not settings.allowed_hosts:
        raise StartupError(
            f"binding {host!r} accepts requests for any host name; set BINANCE_MCP_ALLOWED_HOSTS to the "
            "Host header values clients use (e.g. mcp.example.com:*,10.0.0.5:*) so DNS-rebinding "
            "protection can check them."
        )


def transport_security(settings: Settings) -> TransportSecuritySettings:
    host = settings.http_host.strip()
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    if not is_loopback(host) and host.strip("[]") not in _WILDCARDS:
        shown = f"[{host.strip('[]')}]" if ":" in host.strip("[]") else host
        hosts.append(f"{shown}:*")
        origins += [f"http://{shown}:*", f"https://{shown}:*"]
    for h in settings.allowed_hosts:
        hosts.append(h)
        base = h[:-2] if h.endswith(":*") else h
        origins += [f"http://{base}:*", f"https://{base}:*", f"http://{base}", f"https://{base}"]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(dict.fromkeys(hosts)),
        allowed_origins=list(dict.fromkeys(origins)),
    )


class BearerAuthMiddleware:
    """Require ``Authorization: Bearer <token>`` on every HTTP request except :data:`OPEN_PATHS`."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        got = b""
        for k, v in scope.get("headers") or []:
            if k == b"authorization":
                got = v
                break
        if hmac.compare_digest(got, self._expected):
            await self.app(scope, receive, send)
            return
        body = b'{"error":"unauthorized","detail":"send Authorization: Bearer <BINANCE_MCP_AUTH_TOKEN>"}'
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b'Bearer realm="binance-mcp"'),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
