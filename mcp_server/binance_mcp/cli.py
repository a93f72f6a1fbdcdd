"""The ``binance-mcp`` command: MCP over stdio (default, what desktop clients launch) or Streamable HTTP.

``binance-mcp`` / ``binance-mcp stdio``: one client over stdin/stdout; logs go to stderr only.
``binance-mcp http --host 127.0.0.1 --port 8765``: Streamable HTTP at /mcp, legacy SSE at /sse, /healthz.
With no ``BINANCE_MCP_REDIS_URL`` both run the feed in-process over an in-memory Redis (embedded mode).

This module is the composition root: the only place of the front end that knows the feed daemon, which
:func:`compose` attaches to the runtime in embedded mode.
"""

from __future__ import annotations

import logging
import sys

import anyio
import typer
from pydantic import ValidationError

from binance_common.settings import Settings
from binance_common.signing import KeyConfigError, signer_from_settings

from .runtime import Runtime, default_holder

app = typer.Typer(add_completion=False, no_args_is_help=False, help=(
    "Binance market data MCP server. With no command it serves MCP over stdio (what desktop clients launch: "
    "it then waits for a client on stdin); `binance-mcp http` serves Streamable HTTP."))


def _logging(level: str) -> None:
    # stdio transport owns stdout: logs go to stderr only.
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _settings(**overrides: object) -> Settings:
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
        signer_from_settings(settings)  # an unusable key stops the start here, with what to fix
        return settings
    except (ValidationError, OSError) as e:
        typer.echo(f"binance-mcp: invalid configuration: {e}", err=True)
        raise typer.Exit(2) from None
    except KeyConfigError as e:
        typer.echo(f"binance-mcp: the API key cannot be used: {e}", err=True)
        raise typer.Exit(2) from None


def compose(settings: Settings, runtime: Runtime) -> Runtime:
    """Embedded mode: the feed daemon runs beside the front end, on its in-memory Redis."""
    if settings.embedded:
        from binance_streamd.service import StreamDaemon

        runtime.companions.append(lambda redis: StreamDaemon(settings, redis=redis))
    return runtime


async def _run_stdio(settings: Settings) -> None:
    from .server import build_server

    feed = "the feed embedded in this process" if settings.embedded else f"the shared feed in Redis ({settings.redacted()['redis_url']})"
    print(f"binance-mcp: serving MCP over stdio with {feed}; waiting for a client on stdin "
          "(binance-mcp --help for HTTP and other options)", file=sys.stderr, flush=True)
    rt = compose(settings, Runtime(settings, transport="stdio"))
    await rt.start()
    try:
        await build_server(rt).run_stdio_async()
    finally:
        with anyio.CancelScope(shield=True):
            await rt.stop()


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    log_level: str = typer.Option("WARNING", help="Log level (stderr)."),
    show_config: bool = typer.Option(False, "--show-config", help=(
        "Print the effective settings (every base URL of the profile, toolsets and their tools; secrets masked) "
        "as JSON and exit.")),
    toolsets: str | None = typer.Option(None, help="Toolsets to list, e.g. spot,streams,futures (or all)."),
) -> None:
    """Without a subcommand: serve MCP over stdio (what desktop clients launch)."""
    _logging(log_level)
    ctx.obj = {"toolsets": toolsets}
    if show_config:
        _show_config(_settings(toolsets=toolsets))
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        anyio.run(_run_stdio, _settings(toolsets=toolsets))


def _show_config(settings: Settings) -> None:
    import json
    import os

    from binance_common.settings import CONFIG_ENV

    from . import tools

    shown = {"config_file": os.environ.get(CONFIG_ENV) or None, **settings.redacted()}
    shown["tools"] = [spec.name for spec in tools.selected(settings)] + (
        ["enable_toolsets"] if settings.dynamic_toolsets else [])
    shown["tool_count"] = len(shown["tools"])
    typer.echo(json.dumps(shown, indent=2, default=str))


@app.command()
def stdio(ctx: typer.Context) -> None:
    """Serve MCP over stdio."""
    anyio.run(_run_stdio, _settings(toolsets=(ctx.obj or {}).get("toolsets")))


@app.command()
def http(
    host: str | None = typer.Option(None, help="Bind address (default 127.0.0.1; others need an auth token)."),
    port: int | None = typer.Option(None, help="Port (default 8765; 0 picks a free one)."),
    stateless: bool = typer.Option(True, help="Stateless Streamable HTTP, for N replicas behind a load balancer."),
    replica_id: str | None = typer.Option(
        None, help="Name of this replica in leases and health output (default: http-<host>-<pid>-<random>)."
    ),
    workers: int = typer.Option(
        1, min=1, max=64, help="Worker processes on the same port, each its own stateless replica."
    ),
    toolsets: str | None = typer.Option(None, help=(
        "Toolsets this deployment lists, e.g. spot,streams or futures (default BINANCE_MCP_TOOLSETS).")),
) -> None:
    """Serve MCP over Streamable HTTP at /mcp (plus legacy SSE at /sse and /healthz)."""
    from .http.app import serve, serve_workers
    from .http.auth import StartupError

    settings = _settings(http_host=host, http_port=port, toolsets=toolsets or (ctx_toolsets()))
    if workers > 1 and not stateless:
        typer.echo("binance-mcp: --workers needs stateless mode (sessions live in one process)", err=True)
        raise typer.Exit(2)
    if workers > 1 and settings.embedded:
        typer.echo("binance-mcp: --workers needs a shared Redis (BINANCE_MCP_REDIS_URL); embedded mode "
                   "keeps the feed in one process", err=True)
        raise typer.Exit(2)
    try:
        if workers > 1:
            serve_workers(settings, workers, stateless, replica_id)
        else:
            rt = compose(settings, Runtime(settings, holder=replica_id or f"http-{default_holder()}", transport="http"))
            anyio.run(serve, settings, stateless, replica_id, rt, backend_options=_loop_options())
    except StartupError as e:
        typer.echo(f"binance-mcp: {e}", err=True)
        raise typer.Exit(2) from e
    except OSError as e:
        typer.echo(f"binance-mcp: cannot listen on {settings.http_host}:{settings.http_port}: {e}", err=True)
        raise typer.Exit(1) from e


def ctx_toolsets() -> str | None:
    """``--toolsets`` given before the subcommand (``binance-mcp --toolsets futures http``)."""
    import click

    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if isinstance(ctx.obj, dict) and ctx.obj.get("toolsets"):
            return str(ctx.obj["toolsets"])
        ctx = ctx.parent
    return None


def _loop_options() -> dict[str, bool]:
    """uvloop when installed (uvicorn[standard] brings it): ~15% less CPU per HTTP call on this workload."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


def main() -> None:
    app()
