"""The ``binance-mcp`` command: run the MCP server over stdio (default) or Streamable HTTP."""

from __future__ import annotations

import logging
import sys

import anyio
import typer
from binance_common.settings import Settings

app = typer.Typer(add_completion=False, help="Binance market data MCP server.", no_args_is_help=False)


def _logging(level: str) -> None:
    # stdio transport owns stdout: logs go to stderr only.
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


async def _run_stdio(settings: Settings) -> None:
    from .runtime import Runtime
    from .server import build_server

    rt = Runtime(settings)
    await rt.start()
    try:
        await build_server(rt).run_stdio_async()
    finally:
        await rt.stop()


@app.callback(invoke_without_command=True)
def main_callback(ctx: typer.Context, log_level: str = typer.Option("WARNING", help="Log level (stderr).")) -> None:
    """Without a subcommand: serve MCP over stdio (what desktop clients launch)."""
    _logging(log_level)
    if ctx.invoked_subcommand is None:
        anyio.run(_run_stdio, Settings())


@app.command()
def stdio() -> None:
    """Serve MCP over stdio."""
    anyio.run(_run_stdio, Settings())


@app.command()
def http(
    host: str | None = typer.Option(None, help="Bind address (default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default 8765; 0 picks a free one)."),
    stateless: bool = typer.Option(True, help="Stateless Streamable HTTP (for N replicas)."),
) -> None:
    """Serve MCP over Streamable HTTP at /mcp (plus /healthz)."""
    from .http_app import serve

    overrides = {k: v for k, v in {"http_host": host, "http_port": port}.items() if v is not None}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    anyio.run(serve, settings, stateless)


def main() -> None:
    app()
