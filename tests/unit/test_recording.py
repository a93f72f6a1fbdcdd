"""The suite's own recording is what its generator makes: deterministic, so it can be regenerated and
reviewed, and its content is what the replay tests expect (every kind of stream, a quiet pair)."""

from __future__ import annotations

import json
from collections import Counter

from tests.support.recordings import FIXTURES_DIR, SIM_RECORDING
from tests.support.sim import record
from tests.support.sim.replay import load


def test_the_committed_recording_is_the_generators_output(tmp_path) -> None:
    out = tmp_path / "rec.jsonl.zst"
    record.write(out, record.generate())
    assert out.read_bytes() == (FIXTURES_DIR / SIM_RECORDING).read_bytes(), (
        "regenerate it: python -m tests.support.sim.record tests/fixtures/" + SIM_RECORDING)


def test_the_recording_holds_every_stream_kind_and_a_quiet_pair() -> None:
    rd = load(FIXTURES_DIR / SIM_RECORDING)
    kinds = Counter(s.split("@", 1)[1] for _, s, _ in rd.frames)
    assert set(kinds) == {"aggTrade", "trade", "depth@100ms", "bookTicker"}
    per_symbol = Counter(json.loads(p)["s"] for _, s, p in rd.frames if s.endswith("@trade"))
    assert per_symbol[record.QUIET] * 20 < min(v for k, v in per_symbol.items() if k != record.QUIET)
    assert sorted(rd.depth) == sorted(record.SYMBOLS) and rd.exchange_info is not None
    assert all(b >= a for (a, _, _), (b, _, _) in zip(rd.frames, rd.frames[1:], strict=False))  # in time order
