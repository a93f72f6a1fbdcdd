"""The HTTP front end as an OAuth 2.1 resource server: an issuer runs in-process (its JWKS served over HTTP,
keys generated here), and tokens that are expired, for another audience, from another issuer, badly signed or
missing a scope are refused with the WWW-Authenticate header the MCP authorization spec asks for."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from binance_mcp.http.app import create_app
from tests.support.fake_feed import ServeApp

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")]

RPC = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
           "MCP-Protocol-Version": "2025-11-25"}


class Issuer:
    """A tiny authorization server: a signing key, its JWKS document, and tokens on demand."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pub = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = {"keys": [{**pub, "kid": "k1", "use": "sig", "alg": "RS256"}]}
        self.url = ""

    def app(self) -> Starlette:
        async def jwks(request: Any) -> JSONResponse:
            return JSONResponse(self.jwks)

        return Starlette(routes=[Route("/.well-known/jwks.json", jwks)])

    def token(self, *, aud: str, iss: str | None = None, scope: str = "market:read", exp_in: int = 300,
              key: Any = None) -> str:
        now = int(time.time())
        claims = {"iss": iss or self.url, "aud": aud, "sub": "agent-7", "client_id": "team-bot", "iat": now,
                  "exp": now + exp_in, "scope": scope}
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture
async def issuer():
    iss = Issuer()
    async with ServeApp(iss.app()) as srv:
        iss.url = srv.url
        yield iss


async def test_jwt_access_tokens_are_checked_as_the_spec_asks(issuer, settings_factory, redis_server) -> None:
    from tests.support.redis_server import free_port

    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    s = settings_factory(redis_url=redis_server.url, oauth_issuer=issuer.url, oauth_resource=resource,
                         auth_token="static-team-token")
    aud = resource  # the audience every good token names: this server's public MCP URL
    async with ServeApp(create_app(s), port=port) as served, httpx.AsyncClient(base_url=served.url) as h:
        prm = await h.get("/.well-known/oauth-protected-resource/mcp")
        assert prm.status_code == 200
        doc = prm.json()
        assert doc["resource"] == aud and [a.rstrip("/") for a in doc["authorization_servers"]] == [issuer.url]
        assert doc["scopes_supported"] == ["market:read"]

        async def call(token: str | None) -> httpx.Response:
            headers = dict(HEADERS)
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            return await h.post("/mcp", json=RPC, headers=headers)

        for bad in (None, "not-a-jwt", issuer.token(aud=aud, exp_in=-120),
                    issuer.token(aud="https://other.example/mcp"), issuer.token(aud=aud, iss="https://evil.example"),
                    issuer.token(aud=aud, key=issuer.other)):
            resp = await call(bad)
            assert resp.status_code == 401, (bad, resp.text)
            challenge = resp.headers["www-authenticate"]
            assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
            assert 'resource_metadata="' in challenge and "/.well-known/oauth-protected-resource/mcp" in challenge
        resp = await call(issuer.token(aud=aud, scope="account:read"))
        assert resp.status_code == 403 and 'error="insufficient_scope"' in resp.headers["www-authenticate"]
        assert (await call(issuer.token(aud=aud))).status_code == 200
        assert (await call("static-team-token")).status_code == 200  # the static token still works
        assert (await h.get("/healthz")).json().keys() == {"status"}
        full = (await h.get("/healthz", headers={"Authorization": f"Bearer {issuer.token(aud=aud)}"})).json()
        assert "replica" in full

        client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {issuer.token(aud=aud)}"}, timeout=30)
        async with Client(streamable_http_client(resource, http_client=client)) as c:
            assert "get_server_time" in {t.name for t in (await c.list_tools()).tools}
        await client.aclose()


def test_oauth_needs_the_public_resource_url(settings_factory) -> None:
    with pytest.raises(ValueError, match="BINANCE_MCP_OAUTH_RESOURCE"):
        settings_factory(oauth_issuer="https://auth.example.com")


def test_oauth_counts_as_authentication_for_a_public_bind(settings_factory) -> None:
    from binance_mcp.http.auth import StartupError, check_bind

    s = settings_factory(http_host="10.1.2.3", oauth_issuer="https://auth.example.com",
                         oauth_resource="https://mcp.example.com/mcp")
    check_bind(s, oauth=True)
    with pytest.raises(StartupError):
        check_bind(s)
