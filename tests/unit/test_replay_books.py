"""Acceptance: the four order books of a real recording are rebuilt exactly, level by level.

(a) ``expected_books`` rebuilds them straight from the file with a plain dict, independent of
    ``binance_streamd.orderbook``; (b) BookManager is fed the same frames, with a fake REST serving the
    recorded snapshots only once the replay reaches the moment they were recorded (each was taken slightly
    after the first diffs, so the official buffering procedure is needed); (c) the same through the Binance
    simulator: real WebSocket frames, real REST client.
"""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import orjson
import pytest
import zstandard

from binance_streamd.bookmanager import BookManager

TIMEOUT = 30.0

Levels = list[list[str]]


@dataclass
class Recording:
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)  # symbol -> depth JSON
    snapshot_ts: dict[str, float] = field(default_factory=dict)  # symbol -> receive time, s
    frames: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (ts, combined frame)


def load_recording(path: Path) -> Recording:
    with path.open("rb") as f:
        text = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(f), encoding="utf-8").read()
    rec = Recording()
    for line in text.splitlines()[1:]:  # the first line is the header
        obj = json.loads(line)
        if obj["t"] == "http" and "/depth?" in obj["url"]:
            symbol = parse_qs(urlparse(obj["url"]).query)["symbol"][0]
            rec.snapshots[symbol] = json.loads(obj["data"])
            rec.snapshot_ts[symbol] = obj["ts"]
        elif obj["t"] == "recv":
            rec.frames.append((obj["ts"], json.loads(obj["data"])))
    return rec


def depth_frames(rec: Recording) -> list[tuple[float, dict[str, Any]]]:
    return [(ts, fr) for ts, fr in rec.frames if fr["stream"].endswith("@depth@100ms")]


def expected_books(rec: Recording) -> dict[str, tuple[Levels, Levels, int]]:
    """(a) Plain reconstruction: snapshot, then every diff whose ids lie after it, in file order."""
    out = {}
    for symbol, snapshot in rec.snapshots.items():
        book_id = snapshot["lastUpdateId"]
        sides: dict[str, dict[Decimal, list[str]]] = {
            "b": {Decimal(p): [p, q] for p, q in snapshot["bids"]},
            "a": {Decimal(p): [p, q] for p, q in snapshot["asks"]},
        }
        for _, frame in depth_frames(rec):
            d = frame["data"]
            if d["s"] != symbol or d["u"] <= book_id:
                continue
            assert d["U"] <= book_id + 1, f"{symbol}: the recording itself has a gap"
            for side in ("b", "a"):
                for p, q in d[side]:
                    sides[side][Decimal(p)] = [p, q]
            book_id = d["u"]
        bids = [sides["b"][k] for k in sorted(sides["b"], reverse=True) if Decimal(sides["b"][k][1]) != 0]
        asks = [sides["a"][k] for k in sorted(sides["a"]) if Decimal(sides["a"][k][1]) != 0]
        out[symbol] = (bids, asks, book_id)
    return out


@pytest.fixture(scope="module")
def recording(recording_path: Path) -> Recording:
    return load_recording(recording_path)


def symbols_of(rec: Recording) -> list[str]:
    return list(rec.snapshots)


def test_recording_is_what_the_test_expects(recording: Recording) -> None:
    SYMBOLS = symbols_of(recording)
    assert len(SYMBOLS) == 4
    first_u: dict[str, int] = {}
    for _, fr in depth_frames(recording):
        first_u.setdefault(fr["data"]["s"], fr["data"]["U"])
    for s in SYMBOLS:  # every snapshot postdates the first diff: naive "snapshot first" would be wrong
        assert recording.snapshots[s]["lastUpdateId"] >= first_u[s]
    books = expected_books(recording)
    assert {s: len(b[0]) > 100 and len(b[1]) > 100 for s, b in books.items()} == dict.fromkeys(SYMBOLS, True)


class RecordedRest:
    """Serves each recorded snapshot, but only after the replay has reached the time it was recorded."""

    def __init__(self, rec: Recording) -> None:
        self.rec = rec
        self.available = {s: asyncio.Event() for s in rec.snapshots}
        self.requests: list[dict[str, Any]] = []

    async def get(self, path: str, params: dict[str, Any]) -> Any:
        assert path == "/api/v3/depth"
        self.requests.append(dict(params))
        await self.available[params["symbol"]].wait()
        return self.rec.snapshots[params["symbol"]]


def assert_books_equal(expected: dict[str, tuple[Levels, Levels, int]], m: BookManager) -> None:
    for s in expected:
        book = m.book(s)
        assert book is not None, f"{s} is not live: {m.status()[s]}"
        bids, asks = book.top(None)
        exp_bids, exp_asks, exp_id = expected[s]
        assert book.last_update_id == exp_id
        assert len(bids) == len(exp_bids) and len(asks) == len(exp_asks)
        for i, (got, exp) in enumerate(zip(bids, exp_bids, strict=True)):
            assert got == exp, f"{s} bid level {i}"
        for i, (got, exp) in enumerate(zip(asks, exp_asks, strict=True)):
            assert got == exp, f"{s} ask level {i}"


async def test_book_manager_rebuilds_recorded_books(recording: Recording) -> None:
    """(b) Frames fed in receive order; snapshots released at their recorded time."""
    SYMBOLS = symbols_of(recording)
    expected = expected_books(recording)
    rest = RecordedRest(recording)
    written: dict[str, dict[str, Any]] = {}

    async def write(symbol: str, value: bytes) -> None:
        written[symbol] = orjson.loads(value)

    m = BookManager(rest, SYMBOLS, top_n=5000, write=write, write_interval_s=0.0, retry_delays_s=(0.0,))
    pending = sorted(recording.snapshot_ts.items(), key=lambda kv: kv[1])
    for ts, frame in depth_frames(recording):
        while pending and pending[0][1] <= ts:  # the snapshot exists from now on: let its fetch finish
            symbol = pending.pop(0)[0]
            rest.available[symbol].set()
            await asyncio.wait_for(m.wait_live(symbol), TIMEOUT)
        d = frame["data"]
        await m.on_diff(d["s"], d, int(ts * 1000))
    for symbol, _ in pending:
        rest.available[symbol].set()
    for symbol in SYMBOLS:
        await asyncio.wait_for(m.wait_live(symbol), TIMEOUT)
    await m.close()

    assert_books_equal(expected, m)
    assert sorted(r["symbol"] for r in rest.requests) == sorted(SYMBOLS)  # one snapshot each: nothing was stale
    for s, st in m.status().items():
        assert (st["gaps"], st["resyncs"], st["stale_snapshots"]) == (0, 0, 0), s
        bids, asks, last_id = expected[s]
        assert written[s]["bids"] == bids and written[s]["asks"] == asks
        assert written[s]["lastUpdateId"] == last_id and written[s]["symbol"] == s
