"""Pure parts of the daemon: frame splitting, control replies, rate windows, backoff."""

from __future__ import annotations

import random

import orjson

from binance_streamd.frames import control_reply, is_server_shutdown, split_combined
from binance_streamd.limits import Backoff, SlidingWindow


def test_split_combined_keeps_payload_bytes_verbatim() -> None:
    payload = b'{"e":"trade","E":1,"s":"BNBBTC","t":12345,"p":"0.00100000","q":"100"}'
    frame = b'{"stream":"bnbbtc@trade","data":' + payload + b"}"
    assert split_combined(frame) == ("bnbbtc@trade", payload)
    # other key order: full parse fallback
    other = b'{"data":{"u":1},"stream":"x@bookTicker"}'
    name, raw = split_combined(other)  # type: ignore[misc]
    assert name == "x@bookTicker" and orjson.loads(raw) == {"u": 1}
    assert split_combined(b"{not json") is None
    assert split_combined(b'{"result":null,"id":1}') is None


def test_control_replies_in_every_shape() -> None:
    assert control_reply({"result": None, "id": 1}) == (1, None)
    assert control_reply({"result": ["a"], "id": 2}) == (2, None)
    rid, err = control_reply({"code": 2, "msg": "Invalid request: x", "id": 3})  # type: ignore[misc]
    assert rid == 3 and "Invalid request" in err
    rid, err = control_reply({"error": {"code": 2, "msg": "bad"}, "id": 4})  # type: ignore[misc]
    assert rid == 4 and "bad" in err
    assert control_reply({"e": "trade"}) is None
    assert is_server_shutdown("!serverShutdown", {}) and is_server_shutdown(None, {"e": "serverShutdown"})


def test_sliding_window_never_allows_more_than_limit() -> None:
    w = SlidingWindow(5, 1.0)
    now = 100.0
    sent: list[float] = []
    for _ in range(40):
        d = w.delay(now)
        now += d
        w.record(now)
        sent.append(now)
        now += 0.01
    for i in range(len(sent)):
        in_window = [t for t in sent if sent[i] <= t < sent[i] + 1.0]
        assert len(in_window) <= 5


def test_backoff_is_capped_jittered_and_resets_only_after_healthy_sessions() -> None:
    b = Backoff(base_s=0.5, cap_s=4.0, healthy_after_s=10.0, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(20)]
    assert max(delays) <= 4.0 and min(delays) >= b.min_s
    assert len(set(delays)) > 10  # jitter
    b.reset_if_healthy(0.2)  # died right after opening: keep backing off
    assert b.attempt == 20
    b.reset_if_healthy(30.0)
    assert b.attempt == 0
