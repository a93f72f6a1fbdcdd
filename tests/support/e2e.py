"""Helpers of the end-to-end tests: the ``binance-mcp`` console script over stdio and as an HTTP child process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import httpx
from mcp import StdioServerParameters

from tests.support.fake_feed import wait_until
from tests.support.redis_server import free_port

EXE = shutil.which("binance-mcp") or os.path.join(os.path.dirname(sys.executable), "binance-mcp")


def mcp_env(redis_url: str | None, namespace: str, **extra: str) -> dict[str, str]:
    env = {
        "BINANCE_MCP_NAMESPACE": namespace,
        "BINANCE_MCP_LEASE_TTL_S": "2",
        "BINANCE_MCP_REST_BASE_URL": "http://127.0.0.1:9",  # no REST in these tests
        "BINANCE_MCP_WS_BASE_URL": "ws://127.0.0.1:9",
        **extra,
    }
    if redis_url:
        env["BINANCE_MCP_REDIS_URL"] = redis_url
    return env


class HttpFrontEnd:
    """``binance-mcp http`` as a child process on a free port; always terminated."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env}
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> HttpFrontEnd:
        self.proc = subprocess.Popen(
            [EXE, "http", "--port", str(self.port), *self.args], env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

        async def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"binance-mcp http exited: {self.proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                async with httpx.AsyncClient(timeout=1) as h:
                    return (await h.get(f"{self.url}/healthz")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_until(healthy, timeout=30, interval=0.1)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()




def stdio_params(env: dict[str, str], *args: str) -> StdioServerParameters:
    return StdioServerParameters(command=EXE, args=list(args), env=env)


def pid_of(holder: str) -> int:
    """The pid inside a process lease holder (``<host>-<pid>-<random>``)."""
    return int(holder.rsplit("-", 2)[-2])
