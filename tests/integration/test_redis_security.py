"""A shared Redis with account data: ACL users per role (the README's rules, with the real redis-server) and
TLS (``rediss://``, certificates generated here)."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from redis.exceptions import NoPermissionError

from binance_common.settings import Settings
from binance_common.signing import account_id
from binance_streamd.service import StreamDaemon
from tests.support.accounts import make_key, register
from tests.support.market_harness import call, client_for, replica
from tests.support.redis_server import free_port
from tests.support.sim import BinanceSim, SimConfig
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

MARKET_PREFIXES = ("latest:", "hist:", "status:", "book:", "leases", "always_on", "daemon:", "rl:", "cache:")


def acl_rules(namespace: str, role: str, account: str | None = None) -> list[str]:
    """The README's ACL rules: the daemon owns the namespace; a market front end reads and leases market
    data only; an account front end may also read its own account's keys."""
    p = f"{namespace}:v1:"
    base = ["on", "resetkeys", "resetchannels", f"&{p}*", "+@all", "-@dangerous", "+info"]
    if role == "daemon":
        return [*base, f"~{p}*"]
    rules = [*base, *(f"~{p}{x}*" for x in MARKET_PREFIXES)]
    if role == "account":
        assert account is not None
        rules.append(f"%R~{p}acct:{account}:*")
    return rules


def url_for(redis_url: str, user: str, password: str) -> str:
    return redis_url.replace("redis://", f"redis://{user}:{password}@")


async def test_acl_users_keep_account_data_to_its_holders(redis_server, redis_client, keys) -> None:
    key = make_key("Ed25519")
    acct = account_id(key.api_key)
    users = {}
    for role in ("daemon", "market", "account"):
        name, pw = f"{keys.namespace}-{role}", f"pw-{role}-{keys.namespace}"
        await redis_client.execute_command("ACL", "SETUSER", name, "reset", f">{pw}",
                                           *acl_rules(keys.namespace, role, acct))
        users[role] = url_for(redis_server.url, name, pw)
    async with BinanceSim(SimConfig(symbols=["BTCUSDT", "ETHUSDT"], rate=5.0)) as sim:
        register(sim, key)
        common = dict(rest_base_url=sim.rest_url, ws_base_url=sim.ws_url, ws_api_url=sim.ws_api_url,
                      namespace=keys.namespace, streams=["btcusdt@trade"])
        d = await StreamDaemon(Settings(**common, redis_url=users["daemon"], **key.settings())).start()
        try:
            status_key = keys.account(acct, "status")
            await wait_until(lambda: _state_is(redis_client, status_key, b"live"), what="user-data live")
            sim.account.place("BTCUSDT", "BUY", "20000.00", "0.01")
            async with replica(Settings(**common, redis_url=users["account"], **key.settings())) as rt, \
                    client_for(rt) as c:
                bal = await call(c, "get_balances", {"source": "stream"})
                assert bal["freshness"]["source"] == "stream"
                await call(c, "subscribe_streams", {"streams": ["ethusdt@trade"]})
                await wait_until(lambda: _from_ws(c, "btcusdt@trade"), what="latest trade from the feed")
            async with replica(Settings(**common, redis_url=users["market"])) as rt, client_for(rt) as c:
                await call(c, "subscribe_streams", {"streams": ["ethusdt@aggTrade"]})
                await wait_until(lambda: _from_ws(c, "btcusdt@trade"), what="latest trade from the feed")
                market = aioredis.Redis.from_url(users["market"])
                try:
                    with pytest.raises(NoPermissionError):
                        await market.get(keys.account(acct, "balances"))
                    with pytest.raises(NoPermissionError):
                        await market.flushall()
                finally:
                    await market.aclose()
        finally:
            await d.stop()


async def _from_ws(c, stream: str) -> bool:  # type: ignore[no-untyped-def]
    latest = await call(c, "get_stream_latest", {"stream": stream})
    return bool(latest["freshness"]["source"] == "ws")


async def _state_is(r: aioredis.Redis, key: str, state: bytes) -> bool:
    return await r.hget(key, "state") == state


# --- TLS ------------------------------------------------------------------------------------------------------
def _self_signed(folder: Path) -> tuple[Path, Path]:
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(private, hashes.SHA256()))
    cert_path, key_path = folder / "redis.crt", folder / "redis.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def tls_redis() -> Iterator[tuple[str, Path]]:
    exe = shutil.which("redis-server")
    assert exe is not None
    folder = Path(tempfile.mkdtemp(prefix="bnc-tls-"))
    cert, key = _self_signed(folder)
    port = free_port()
    proc = subprocess.Popen([exe, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(folder), "--tls-cert-file", str(cert),
                             "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}", cert
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


async def test_rediss_urls_work_for_both_processes(tls_redis, keys) -> None:
    url, _cert = tls_redis
    client = aioredis.Redis.from_url(url)
    try:
        await wait_until(_pings(client), timeout=10, what="TLS redis-server up")
        async with BinanceSim(SimConfig(symbols=["BTCUSDT"], rate=5.0)) as sim:
            s = Settings(rest_base_url=sim.rest_url, ws_base_url=sim.ws_url, namespace=keys.namespace,
                         redis_url=url, streams=["btcusdt@trade"])
            d = await StreamDaemon(s).start()
            try:
                async with replica(s) as rt, client_for(rt) as c:
                    await wait_until(lambda: _from_ws(c, "btcusdt@trade"), what="latest trade over TLS")
                assert await client.exists(keys.heartbeat)
            finally:
                await d.stop()
        plain = aioredis.Redis.from_url(url.replace("rediss://", "redis://").split("?")[0], socket_timeout=2)
        with pytest.raises(Exception):  # the server speaks TLS only
            await plain.ping()
        await plain.aclose()
    finally:
        await client.aclose()


def _pings(client: aioredis.Redis):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        try:
            return bool(await client.ping())
        except Exception:  # not listening yet: wait_until polls again
            return False

    return check
