"""Generate the suite's own recording: ``python -m tests.support.sim.record tests/fixtures/recording-sim-4sym.jsonl.zst``.

A deterministic synthetic market (fixed seed, synthetic clock) written in the same JSONL format as the real
Binance capture the acceptance tests replay (a header line, ``http`` lines with exchangeInfo and depth
snapshots taken a little after the first diffs, ``recv`` lines with combined-stream frames and their
receive time). Four symbols with aggTrade, trade, depth@100ms and bookTicker; one of them trades rarely, a
quiet pair. Small enough to commit, so the replay machinery is tested in every clone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBBTC", "XRPEUR")
QUIET = "XRPEUR"
START_MS = 1_764_547_200_000  # 2025-12-01T00:00:00Z
STEP_MS = 100
DURATION_S = 40
SNAPSHOT_AFTER_MS = 700  # each snapshot is taken this long after the first diffs (so buffering is needed)


class _Recorder:
    """Stands in for a client connection subscribed to everything: collects (ts, stream, payload)."""

    def __init__(self, clock: list[int]) -> None:
        self.clock = clock
        self.frames: list[tuple[float, str, bytes]] = []

    def send_event(self, stream: str, raw: bytes) -> None:
        self.frames.append((self.clock[0] / 1000 + 0.004, stream, raw))


def generate(duration_s: int = DURATION_S, seed: int = 7) -> list[dict[str, Any]]:
    from .hub import Hub
    from .market import Market
    from .rest import symbol_info
    from .server import split_symbol

    markets = {}
    for i, sym in enumerate(SYMBOLS):
        base, quote = split_symbol(sym)
        markets[sym] = Market(sym, base, quote, seed=seed, mid_ticks=3_000_000 - i * 7_000)
    hub = Hub(markets, rate=0)
    clock = [START_MS]
    hub.clock = lambda: clock[0]
    rec = _Recorder(clock)
    streams = [f"{s.lower()}@{k}" for s in SYMBOLS for k in ("aggTrade", "trade", "depth@100ms", "bookTicker")]
    for st in streams:
        hub.add(rec, st)  # type: ignore[arg-type]
    info = {"timezone": "UTC", "serverTime": START_MS, "rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}],
        "exchangeFilters": [], "symbols": [symbol_info(m) for m in markets.values()]}
    lines: list[dict[str, Any]] = [
        {"t": "header", "format": 2, "exchange": "BINANCE", "generator": "tests.support.sim.record", "seed": seed,
         "recorded": START_MS / 1000},
        {"t": "http", "conn": "sim.http", "ts": START_MS / 1000, "url": "https://api.binance.com/api/v3/exchangeInfo",
         "data": json.dumps(info, separators=(",", ":"))},
    ]
    first_diff: dict[str, int] = {}
    snapped: set[str] = set()
    snapshots: list[dict[str, Any]] = []
    end = START_MS + duration_s * 1000
    n = 0
    while clock[0] < end:
        for sym, m in markets.items():
            if sym == QUIET and n % 37:
                continue  # a quiet pair: it moves about every 3.7 s
            hub.step(m)
        n += 1
        clock[0] += STEP_MS
        for sym, m in markets.items():
            before = len(rec.frames)
            hub.flush_depth(m, 100, clock[0])
            if len(rec.frames) > before and sym not in first_diff:
                first_diff[sym] = clock[0]
            if sym in first_diff and sym not in snapped and clock[0] - first_diff[sym] >= SNAPSHOT_AFTER_MS:
                snapped.add(sym)
                snapshots.append({"t": "http", "conn": "sim.http", "ts": clock[0] / 1000 + 0.002,
                                  "url": f"https://api.binance.com/api/v3/depth?symbol={sym}&limit=1000",
                                  "data": json.dumps(m.depth_snapshot(1000), separators=(",", ":"))})
    lines.extend(snapshots)
    for ts, stream, raw in rec.frames:
        frame = b'{"stream":"' + stream.encode() + b'","data":' + raw + b"}"
        lines.append({"t": "recv", "conn": "sim.ws", "ts": round(ts, 6), "data": frame.decode()})
    return lines


def write(path: Path, lines: list[dict[str, Any]]) -> int:
    import zstandard

    text = "\n".join(json.dumps(x, separators=(",", ":")) for x in lines) + "\n"
    blob = zstandard.ZstdCompressor(level=19).compress(text.encode())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    return len(blob)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tests.support.sim.record", description=__doc__)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seconds", type=int, default=DURATION_S)
    a = ap.parse_args(argv)
    lines = generate(a.seconds)
    size = write(a.out, lines)
    print(f"{a.out}: {len(lines)} lines, {size} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
