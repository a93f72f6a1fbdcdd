"""The ``binance-streamd`` command: run the daemon, show its status, or check its health (exit 0/1)."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
from typing import Any

import orjson
import typer
from pydantic import ValidationError
from redis.exceptions import RedisError

from binance_common.feedstore import parse_token
from binance_common.keys import Keys
from binance_common.redis_conn import make_redis
from binance_common.settings import Settings
from binance_common.signing import KeyConfigError

app = typer.Typer(add_completion=False, help="Binance WebSocket feed daemon writing into Redis.")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname.lower(),
                               "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def _logging(level: str, fmt: str) -> None:
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(_JsonFormatter() if fmt == "json" else
                   logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [h]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))


async def _run(settings: Settings) -> None:
    from . import systemd
    from .service import StreamDaemon

    if settings.embedded:
        raise typer.BadParameter("binance-streamd needs BINANCE_MCP_REDIS_URL (it writes to a shared Redis)")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    daemon = StreamDaemon(settings)
    await daemon.start()
    metrics = None
    if settings.metrics_port:
        from .metrics import serve_metrics

        metrics = await serve_metrics(daemon, settings.metrics_port)
    logging.getLogger(__name__).info("binance-streamd started: %s", settings.redacted())
    systemd.notify("READY=1")
    try:
        await stop.wait()
    finally:
        systemd.notify("STOPPING=1")
        if metrics is not None:
            metrics.close()
        await daemon.stop()


@app.command()
def run(log_level: str = typer.Option("INFO"), log_format: str = typer.Option("json", help="json or text")) -> None:
    """Run the feed (SIGTERM: stop reading, flush, delete heartbeat, close)."""
    _logging(log_level, log_format)
    settings = _settings()
    try:
        asyncio.run(_run(settings))
    except KeyConfigError as e:
        typer.echo(f"binance-streamd: the API key cannot be used: {e}", err=True)
        raise typer.Exit(2) from None


def _settings() -> Settings:
    """Settings from the environment; an invalid configuration is one line on stderr (never the values)."""
    try:
        return Settings()
    except (ValidationError, OSError) as e:
        typer.echo(f"binance-streamd: invalid configuration: {e}", err=True)
        raise typer.Exit(2) from None


async def _read(settings: Settings) -> tuple[dict[str, Any] | None, dict[str, Any] | None,
                                           dict[str, dict[str, str]], str | None, list[dict[str, Any]]]:
    keys = Keys(settings.namespace)
    r = make_redis(settings, decode_responses=True)
    try:
        hb_raw = await r.get(keys.heartbeat)
        stats_raw = await r.get(keys.daemon_stats)
        leader: str | None = await r.get(keys.leader)  # type: ignore[assignment]
        statuses: dict[str, dict[str, str]] = {}
        async for key in r.scan_iter(match=keys.status_pattern, count=500):
            statuses[keys.stream_from_status_key(key)] = await r.hgetall(key)  # type: ignore[assignment]
        standbys = []
        async for key in r.scan_iter(match=keys.standby_pattern, count=100):
            raw = await r.get(key)
            if raw:
                standbys.append(orjson.loads(raw))
    finally:
        await r.aclose()
    return (orjson.loads(hb_raw) if hb_raw else None, orjson.loads(stats_raw) if stats_raw else None, statuses,
            leader, standbys)


NO_REDIS = ("binance-streamd {what} reads the daemon's Redis: set BINANCE_MCP_REDIS_URL (the same URL the daemon "
            "runs with, e.g. redis://127.0.0.1:6379/0)")


def _read_or_exit(settings: Settings) -> Any:
    if settings.embedded:  # no Redis configured: an empty in-memory store would say "not running"
        typer.echo(NO_REDIS.format(what="status"), err=True)
        raise typer.Exit(2)
    try:
        return asyncio.run(_read(settings))
    except (RedisError, OSError) as e:
        typer.echo(f"cannot read the feed: Redis at {settings.redacted().get('redis_url') or '(none configured)'} "
                   f"is unreachable ({type(e).__name__}: {e})", err=True)
        raise typer.Exit(2) from None


@app.command()
def status() -> None:
    """Readable table: who leads, connections, streams, message rates, lag, gaps, reconnects."""
    settings = _settings()
    hb, stats, statuses, leader, standbys = _read_or_exit(settings)
    now = int(time.time() * 1000)
    tok = parse_token(leader)
    if hb:
        typer.echo(f"daemon: pid {hb['pid']} on {hb['host']}, up {(now - hb['started']) / 1000:.0f} s, "
                   f"heartbeat {(now - hb['ts']) / 1000:.1f} s ago")
    else:
        typer.echo("daemon: NOT RUNNING (no heartbeat)")
    if tok:
        typer.echo(f"leader: pid {tok['pid']} on {tok['host']} (term {tok['epoch']})")
    else:
        typer.echo("leader: none")
    for sb in standbys:
        typer.echo(f"standby: pid {sb.get('pid')} on {sb.get('host')}, heartbeat {(now - sb.get('ts', now)) / 1000:.1f} s ago")
    if settings.api_key is not None:
        _account_line(settings, now)
    wanted: set[str] | None = None
    if stats:
        w = stats.get("writer", {})
        typer.echo(f"writer: {w.get('strategy')} written={w.get('written')} buffered={w.get('buffered')} "
                   f"dropped={w.get('dropped')} rewinds={w.get('rewinds', 0)} redis_ok={w.get('redis_ok')}  "
                   f"malformed={stats.get('malformed')}")
        rq = stats.get("rest") or {}
        if rq:
            typer.echo(f"rest: queued={rq.get('queued')} sent={rq.get('sent')} held_back={rq.get('held_back')}")
        typer.echo(f"{'conn':>5} {'streams':>7} {'age s':>8} {'frames':>9} {'reconn':>6} {'rotat':>5} up")
        for c in stats.get("connections", []):
            typer.echo(f"{c['conn'] or '-':>5} {c['streams']:>7} {c['age_s']:>8} {c['frames']:>9} "
                       f"{c['reconnects']:>6} {c['rotations']:>5} {'yes' if c['up'] else 'NO'}")
        if hb and isinstance(stats.get("streams"), dict):
            wanted = set(stats["streams"])
    typer.echo(f"{'stream':<32} {'state':<12} {'msg/s':>7} {'lag ms':>8} {'gaps':>5} {'filled':>6} {'reconn':>6} reason")
    for name in sorted(statuses):
        st = statuses[name]
        last = int(st.get("last_recv") or 0)
        lag = str(now - last) if last else "-"
        state = st.get("state", "?")
        if wanted is not None and name not in wanted:
            state = "(leftover)"  # written by an earlier run; the running daemon does not want it
        typer.echo(f"{name:<32} {state:<12} {st.get('rate', '0'):>7} {lag:>8} "
                   f"{st.get('gaps_found', '0'):>5} {st.get('gaps_filled', '0'):>6} {st.get('reconnects', '0'):>6} "
                   f"{st.get('reason', '')}")


def _account_line(settings: Settings, now: int) -> None:
    """The user-data stream of the configured account (its Redis id, never the key)."""
    from binance_common.signing import account_id

    acct = account_id(settings.api_key.get_secret_value()) if settings.api_key else ""

    async def read() -> dict[bytes, bytes]:
        r = make_redis(settings)
        try:
            raw: Any = await r.hgetall(Keys(settings.namespace).account(acct, "status"))
            return dict(raw)
        finally:
            await r.aclose()

    st = {k.decode(): v.decode() for k, v in asyncio.run(read()).items()}
    last = int(st.get("last_event_ms") or 0)
    typer.echo(f"account {acct}: user-data {st.get('state', 'not started')}, events {st.get('events', '0')}, gaps "
               f"{st.get('gaps', '0')}, reconciles {st.get('reconciles', '0')}, last event "
               f"{f'{(now - last) / 1000:.0f} s ago' if last else '-'} {st.get('reason', '')}")


@app.command()
def check() -> None:
    """Exit 0 when the daemon's heartbeat is fresh, 1 otherwise (for health checks); 2 without a Redis URL."""
    settings = _settings()
    if settings.embedded:
        typer.echo(NO_REDIS.format(what="check"), err=True)
        raise typer.Exit(2)
    try:
        hb = asyncio.run(_read(settings))[0]
    except Exception as e:
        typer.echo(f"unhealthy: {type(e).__name__}: {e}", err=True)
        raise typer.Exit(1) from None
    if not hb:
        typer.echo("unhealthy: no heartbeat", err=True)
        raise typer.Exit(1)
    typer.echo("healthy")


@app.command("systemd-unit")
def systemd_unit(user: str = typer.Option("", help="Run as this account (default: a dynamic user)."),
                 env_file: str = typer.Option("/etc/binance-streamd.env", help="Settings file the unit reads.")) -> None:
    """Print a systemd unit for this install (the right ExecStart for this venv):
    binance-streamd systemd-unit | sudo tee /etc/systemd/system/binance-streamd.service"""
    import os
    import shutil

    from . import systemd

    exe = shutil.which("binance-streamd")
    argv0 = os.path.realpath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if argv0.endswith("binance-streamd"):
        exe = argv0
    exec_start = exe or f"{os.path.realpath(sys.executable)} -m binance_streamd"
    typer.echo(systemd.unit_text(exec_start, user=user or None, env_file=env_file), nl=False)


def main() -> None:
    app()
