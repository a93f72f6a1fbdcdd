"""The README's walk-through, run as written (against the simulator instead of Binance, on free ports): Redis,
the daemon, an HTTP front end and a stdio front end; both agents read the same feed."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest
from mcp import Client, StdioServerParameters

from tests.support.e2e import EXE
from tests.support.redis_server import free_port
from tests.support.sim import BinanceSim, SimConfig
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

README = Path(__file__).resolve().parents[2] / "README.md"


def walkthrough() -> str:
    text = README.read_text()
    after = text.split("<!-- walkthrough", 1)[1]
    m = re.search(r"```bash\n(.*?)```", after, re.S)
    assert m, "the README lost its walk-through block"
    return m.group(1)


async def test_the_readme_walkthrough_runs_as_written(namespace) -> None:
    rport, hport = free_port(), free_port()
    script = walkthrough().replace("6379", str(rport)).replace("8765", str(hport))
    async with BinanceSim(SimConfig(symbols=["BTCUSDT", "ETHUSDT"], rate=20.0)) as sim:
        env = {**os.environ, "BINANCE_MCP_REST_BASE_URL": sim.rest_url, "BINANCE_MCP_WS_BASE_URL": sim.ws_url,
               "BINANCE_MCP_NAMESPACE": namespace}
        workdir = Path(tempfile.mkdtemp(prefix="walkthrough-"))
        out_f, err_f = open(workdir / "out", "wb"), open(workdir / "err", "wb")
        proc = await asyncio.create_subprocess_exec("bash", "-euo", "pipefail", "-c", script, env=env, cwd=workdir,
                                                    start_new_session=True, stdout=out_f, stderr=err_f)
        try:
            await asyncio.wait_for(proc.wait(), 90)
            assert proc.returncode == 0, (workdir / "err").read_text()[-3000:]
            status = (workdir / "out").read_text()
            assert "leader: pid" in status and "btcusdt@trade" in status
            redis_url = f"redis://127.0.0.1:{rport}/0"

            async def http_up() -> bool:
                try:
                    async with httpx.AsyncClient(timeout=2) as h:
                        return (await h.get(f"http://127.0.0.1:{hport}/healthz")).json()["status"] == "ok"
                except (httpx.HTTPError, ValueError, KeyError):
                    return False

            await wait_until(http_up, timeout=30, what="agent 1 (HTTP) healthy")
            stdio = StdioServerParameters(command=EXE, args=[], env={**env, "BINANCE_MCP_REDIS_URL": redis_url})
            async with Client(f"http://127.0.0.1:{hport}/mcp") as one, Client(stdio) as two:
                async def both_see_trades() -> bool:
                    a = (await one.call_tool("get_stream_latest", {"stream": "btcusdt@trade"})).structured_content
                    b = (await two.call_tool("get_stream_latest", {"stream": "btcusdt@trade"})).structured_content
                    return bool(a and b and a["data"] and b["data"] and a["freshness"]["state"] == "live"
                                and b["freshness"]["state"] == "live")

                await wait_until(both_see_trades, timeout=30, what="both agents read the shared feed")
                book = await two.call_tool("get_live_order_book", {"symbol": "BTCUSDT", "levels": 3})
                assert not book.is_error and len(book.structured_content["bids"]) == 3
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            subprocess.run(["redis-cli", "-p", str(rport), "shutdown", "nosave"], capture_output=True, timeout=10)
            out_f.close()
            err_f.close()
