"""Toolsets (what tools/list shows, under 40 by default; enable_toolsets adds a set and notifies the client)
and endpoint profiles (every base URL at once, shown by --show-config with secrets masked)."""

from __future__ import annotations

import json
import subprocess
import sys

import anyio
import pytest
from mcp import Client

from binance_common.settings import PROFILES, URL_FIELDS, Settings
from binance_mcp import tools
from binance_mcp.server import build_server
from tests.support.accounts import make_key, register
from tests.support.market_harness import call, replica
from tests.support.sim import BinanceSim, SimConfig

pytestmark = pytest.mark.integration


def test_every_profile_sets_every_url_and_a_url_of_its_own_wins() -> None:
    for name, urls in PROFILES.items():
        s = Settings(profile=name)  # type: ignore[arg-type]
        assert {f: getattr(s, f) for f in URL_FIELDS} == urls
    s = Settings(profile="testnet", ws_base_url="ws://127.0.0.1:1")
    assert s.ws_base_url == "ws://127.0.0.1:1" and s.rest_base_url == "https://testnet.binance.vision"
    assert PROFILES["data-api"]["rest_base_url"] == "https://data-api.binance.vision"
    assert PROFILES["demo"]["ws_api_url"] == "wss://demo-ws-api.binance.com/ws-api/v3"
    with pytest.raises(ValueError, match="public market data only"):
        Settings(profile="data-api", api_key="k", api_secret="s")


def test_the_default_toolsets_stay_under_forty_tools() -> None:
    with_key = Settings(api_key="k", api_secret="s")
    assert len(tools.selected(with_key)) < 40
    assert len(tools.selected(Settings())) == len(tools.ALL)  # without a key: no signed toolset
    everything = Settings(api_key="k", api_secret="s", toolsets="all")
    names = [t.name for t in tools.selected(everything)]
    assert len(names) == len(set(names)) and set(names) >= {s.name for s in tools.ACCOUNT}
    with pytest.raises(ValueError, match="unknown toolset"):
        Settings(toolsets="spot,nosuch")


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_show_config_prints_each_profiles_urls_with_secrets_masked(profile, tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "BINANCE_MCP_PROFILE": profile, "BINANCE_MCP_AUTH_TOKEN": "tok-secret-1",
           "BINANCE_MCP_REDIS_URL": "redis://user:redispw@127.0.0.1:6379/0"}
    if profile != "data-api":
        env |= {"BINANCE_MCP_API_KEY": "key-secret-2", "BINANCE_MCP_API_SECRET": "hmac-secret-3"}
    out = subprocess.run([sys.executable, "-c", "from binance_mcp.cli import main; main()", "--show-config"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert {f: shown[f] for f in URL_FIELDS} == PROFILES[profile]
    for secret in ("tok-secret-1", "key-secret-2", "hmac-secret-3", "redispw"):
        assert secret not in out.stdout + out.stderr
    assert shown["tool_count"] == len(shown["tools"]) < 40


async def test_enable_toolsets_adds_tools_and_tells_the_client(settings_factory, redis_server) -> None:
    async with BinanceSim(SimConfig(symbols=["BTCUSDT"], rate=0)) as sim:
        key = make_key("HMAC")
        register(sim, key)
        s = settings_factory(redis_url=redis_server.url, rest_base_url=sim.rest_url, dynamic_toolsets=True,
                             toolsets="streams", **key.settings())
        async with replica(s) as rt, Client(build_server(rt)) as c:
            before = {t.name for t in (await c.list_tools()).tools}
            assert "get_account" not in before and "enable_toolsets" in before
            listing = await call(c, "enable_toolsets")
            assert listing["added"] == [] and "get_my_trades" in listing["available"]["account"]
            async with c.listen(tools_list_changed=True) as sub:
                res = await call(c, "enable_toolsets", {"toolsets": ["account", "trading"]})
                with anyio.fail_after(5):
                    event = await sub.__anext__()
                assert "Tools" in type(event).__name__, event
            assert set(res["added"]) == {s.name for s in tools.ACCOUNT} | {"get_price_rules"}
            assert set(res["enabled"]) >= {"streams", "account", "trading"}
            after = {t.name for t in (await c.list_tools()).tools}
            assert after - before == {s.name for s in tools.ACCOUNT} | {"get_price_rules"}
            again = await call(c, "enable_toolsets", {"toolsets": ["account"]})
            assert again["added"] == []
            assert (await call(c, "get_order_rate_limits"))["limits"]
