"""OAuth 2.1 resource server for teams that expose the HTTP front end (the MCP authorization spec).

Access tokens are JWTs from a configured authorization server: signature checked against its JWKS
(``BINANCE_MCP_OAUTH_JWKS_URL``, keys cached and refreshed on an unknown ``kid``), ``iss`` equal to
``BINANCE_MCP_OAUTH_ISSUER``, ``aud`` containing this server's resource URL (``BINANCE_MCP_OAUTH_RESOURCE``,
e.g. ``https://mcp.example.com/mcp``), ``exp``/``nbf`` valid (30 s leeway), and the scopes in ``scope``
(space-separated) or ``scp`` (a list). The SDK's middleware turns a refusal into 401
``WWW-Authenticate: Bearer error="invalid_token", ..., resource_metadata="<url>"``, a missing scope into 403
``insufficient_scope``, and serves the Protected Resource Metadata document (RFC 9728) at
``/.well-known/oauth-protected-resource/mcp``, which points clients at the authorization server.

The static bearer token (``BINANCE_MCP_AUTH_TOKEN``) still works beside OAuth: it stands for a principal
with every scope this server knows. Scopes gate tool groups (:data:`SCOPES`); every tool today reads
market data, so ``market:read`` is required on the transport, and :func:`require_scope` gates finer groups.

PyJWT does the cryptography (it is the SDK's own dependency); nothing here signs or parses by hand.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import anyio
import jwt
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware, get_access_token
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver.exceptions import ToolError
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.types import Scope

from binance_common.settings import Settings

from .auth import Authenticator, auth_token

log = logging.getLogger(__name__)

__all__ = ["SCOPES", "JwtVerifier", "auth_settings", "jwt_authenticator", "oauth_enabled", "oauth_middleware",
           "require_scope", "verifier_for"]

#: tool group -> scope. ``market:read``: market data and stream tools (all tools today); ``account:read`` and
#: ``trade`` for the account and trading tools to come.
SCOPES = {"market": "market:read", "account": "account:read", "trade": "trade"}
LEEWAY_S = 30


def oauth_enabled(settings: Settings) -> bool:
    return bool(settings.oauth_issuer)


def auth_settings(settings: Settings) -> AuthSettings:
    assert settings.oauth_issuer and settings.oauth_resource
    return AuthSettings(issuer_url=settings.oauth_issuer, resource_server_url=settings.oauth_resource,  # type: ignore[arg-type]
                        required_scopes=list(settings.oauth_required_scopes), validate_token_resource=True)


class JwtVerifier:
    """The SDK's ``TokenVerifier``: a JWT from the configured issuer, or the static bearer token."""

    def __init__(self, *, issuer: str, audience: str, jwks_url: str, algorithms: list[str],
                 static_token: str | None = None, static_scopes: list[str] | None = None) -> None:
        self.issuer = issuer
        self.audience = audience
        self.algorithms = algorithms
        self.static_token = static_token
        self.static_scopes = static_scopes or sorted(set(SCOPES.values()))
        self.jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5)
        self.refused = 0

    async def verify_token(self, token: str) -> AccessToken | None:
        """The token's principal, or None (never raises: the SDK answers None with 401)."""
        if self.static_token and hmac.compare_digest(token.encode(), self.static_token.encode()):
            return AccessToken(token=token, client_id="static-token", scopes=self.static_scopes,
                               resource=self.audience)
        try:
            key = await anyio.to_thread.run_sync(self.jwks.get_signing_key_from_jwt, token)  # may fetch JWKS
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=self.algorithms, audience=self.audience, issuer=self.issuer,
                leeway=LEEWAY_S, options={"require": ["exp", "iss", "aud"]})
        except (jwt.PyJWTError, OSError, ValueError) as e:
            self.refused += 1
            log.info("access token refused: %s", type(e).__name__)  # never the token itself
            return None
        raw = claims.get("scope")
        scopes = raw.split() if isinstance(raw, str) else [str(s) for s in claims.get("scp") or []]
        client = claims.get("client_id") or claims.get("azp") or claims.get("sub") or "unknown"
        return AccessToken(token=token, client_id=str(client), scopes=scopes, expires_at=int(claims["exp"]),
                           resource=self.audience, subject=claims.get("sub"), claims={"iss": claims["iss"]})


def verifier_for(settings: Settings) -> JwtVerifier:
    assert settings.oauth_issuer and settings.oauth_resource
    jwks = settings.oauth_jwks_url or settings.oauth_issuer.rstrip("/") + "/.well-known/jwks.json"
    return JwtVerifier(issuer=settings.oauth_issuer, audience=settings.oauth_resource, jwks_url=jwks,
                       algorithms=list(settings.oauth_algorithms), static_token=auth_token(settings))


def require_scope(scope: str) -> None:
    """Inside a tool: refuse unless the caller's access token has ``scope`` (no-op without OAuth, e.g.
    stdio or a static token deployment, where the transport already decided)."""
    tok = get_access_token()
    if tok is not None and scope not in tok.scopes:
        raise ToolError(f"this tool needs the OAuth scope {scope!r}; the access token has "
                        f"{' '.join(tok.scopes) or 'none'}. Ask your authorization server for it.")


def oauth_middleware(verifier: JwtVerifier, settings: Settings) -> list[Middleware]:
    """What the SDK's own app would wrap its routes in (we mount the routes into our app): the bearer backend
    and the context that :func:`get_access_token` reads."""
    return [Middleware(AuthenticationMiddleware,
                       backend=BearerAuthBackend(verifier, resource_server_url=settings.oauth_resource)),  # type: ignore[arg-type]
            Middleware(AuthContextMiddleware)]


def jwt_authenticator(verifier: JwtVerifier) -> Authenticator:
    """For the open paths (``/healthz``): is the request's bearer token one the verifier accepts?"""

    async def check(scope: Scope) -> tuple[int, str, str] | None:
        for k, v in scope.get("headers") or []:
            if k == b"authorization" and v[:7].lower() == b"bearer ":
                if await verifier.verify_token(v[7:].decode("latin-1").strip()) is not None:
                    return None
        return 401, 'Bearer error="invalid_token"', "a valid access token is required"

    return check
