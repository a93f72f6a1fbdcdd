"""binance_streamd.frames: combined-frame splitting (verbatim fast path), control replies, server shutdown.

Payloads here are deliberately *not* canonical orjson (spaces, ``1.10``): a payload that went through
``orjson.loads``/``orjson.dumps`` would come back as different bytes, so these tests notice when the
fast path is bypassed.
"""

from __future__ import annotations

import orjson
import pytest

from binance_streamd.frames import control_reply, is_server_shutdown, split_combined

# Non-canonical: spaces after separators and a number with a trailing zero.
PAYLOAD = b'{"e": "trade", "E": 1700000000000, "s": "BTCUSDT", "t": 42, "p": "1.10", "q": 1.10}'
CANONICAL = b'{"e":"trade","E":1700000000000,"s":"BTCUSDT","t":42,"p":"1.10","q":1.1}'


def combined(stream: bytes, payload: bytes) -> bytes:
    return b'{"stream":"' + stream + b'","data":' + payload + b"}"


# --- split_combined: fast path ------------------------------------------------------------------------
def test_fast_path_returns_payload_bytes_verbatim() -> None:
    assert orjson.dumps(orjson.loads(PAYLOAD)) == CANONICAL != PAYLOAD  # the test data can tell the paths apart
    out = split_combined(combined(b"btcusdt@trade", PAYLOAD))
    assert out == ("btcusdt@trade", PAYLOAD)
    name, raw = out  # type: ignore[misc]
    assert type(name) is str and type(raw) is bytes


def test_fast_path_keeps_trailing_whitespace_of_the_payload() -> None:
    assert split_combined(combined(b"a@depth", b"[1.10, 2] ")) == ("a@depth", b"[1.10, 2] ")


def test_fast_path_scalar_and_empty_stream_name() -> None:
    assert split_combined(b'{"stream":"x@bookTicker","data":1.50}') == ("x@bookTicker", b"1.50")
    assert split_combined(b'{"stream":"","data":1.50}') == ("", b"1.50")


def test_fast_path_splits_at_the_first_data_key_not_a_nested_one() -> None:
    payload = b'{"s":"x","data": 1.10, "n": {"k":"v","data": 2.50}}'
    assert split_combined(combined(b"btcusdt@trade", payload)) == ("btcusdt@trade", payload)


def test_fast_path_decodes_a_non_ascii_stream_name() -> None:
    assert split_combined(combined("ä@trade".encode(), b"{ }")) == ("ä@trade", b"{ }")


# --- split_combined: full parse fallback --------------------------------------------------------------
def test_other_key_order_falls_back_to_a_full_parse() -> None:
    frame = b'{"data": {"p": "1.10", "q": 1.10}, "stream": "x@trade"}'
    assert split_combined(frame) == ("x@trade", b'{"p":"1.10","q":1.1}')


def test_spaced_head_falls_back_to_a_full_parse() -> None:
    frame = b'{"stream": "x@trade", "data": {"q": 1.10}}'
    assert split_combined(frame) == ("x@trade", b'{"q":1.1}')


def test_frame_not_ending_in_brace_is_not_sliced() -> None:
    # Head and data key are in place, but the frame ends in whitespace: the slice would keep the outer brace.
    frame = combined(b"x@trade", b'{"q": 1.10}') + b"\n"
    assert split_combined(frame) == ("x@trade", b'{"q":1.1}')


def test_null_data_is_kept() -> None:
    assert split_combined(b'{"data": null, "stream": "x"}') == ("x", b"null")


@pytest.mark.parametrize(
    "frame",
    [
        b'{"data": 1}',  # no stream
        b'{"data":1,"stream":5}',  # stream not a string
        b'{"data":1,"stream":null}',
        b'{"stream":"x"}',  # no data (fast-path head present, no data key)
        b'{"stream": "x", "result": null}',
        b'{"result":null,"id":1}',
        b"[1, 2]",
        b'["stream", "data"]',
        b'"stream"',
        b"1.10",
        b"null",
        b"",
        b"{not json",
        b'{"stream":"x","data":',  # truncated, fast-path head present
        # invalid JSON whose head's closing quote starts a '","data":': the search must begin after the head
        b'{"stream":","data":1}',
    ],
)
def test_not_a_combined_frame_gives_none(frame: bytes) -> None:
    assert split_combined(frame) is None


# --- control_reply ------------------------------------------------------------------------------------
def test_result_reply() -> None:
    assert control_reply({"result": None, "id": 1}) == (1, None)
    assert control_reply({"result": ["btcusdt@trade"], "id": "abc"}) == ("abc", None)
    assert control_reply({"result": None, "id": None}) == (None, None)


def test_error_in_error_object() -> None:
    assert control_reply({"error": {"code": 2, "msg": "Invalid request"}, "id": 4}) == (
        4, "Binance error 2: Invalid request")
    assert control_reply({"error": {}, "id": 4}) == (4, "Binance error None: None")


def test_error_at_top_level() -> None:
    assert control_reply({"code": 3, "msg": "Invalid JSON", "id": 5}) == (5, "Binance error 3: Invalid JSON")
    assert control_reply({"code": 3, "id": 5}) == (5, "Binance error 3: None")


def test_precedence_result_then_error_object_then_code() -> None:
    assert control_reply({"result": None, "error": {"code": 1, "msg": "a"}, "code": 2, "id": 6}) == (6, None)
    assert control_reply({"error": {"code": 1, "msg": "a"}, "code": 2, "msg": "b", "id": 7}) == (
        7, "Binance error 1: a")
    # a non-dict "error" is not the error object: the top-level code is used
    assert control_reply({"error": "x", "code": 2, "msg": "b", "id": 8}) == (8, "Binance error 2: b")


@pytest.mark.parametrize(
    "obj",
    [
        {"id": 1},
        {"id": 1, "error": "x"},
        {"id": 1, "msg": "m"},
        {"result": None},
        {"code": 2, "msg": "m"},
        {"e": "trade", "E": 1},
        ["id", "result"],
        "id",
        None,
        1,
    ],
)
def test_not_a_control_reply(obj: object) -> None:
    assert control_reply(obj) is None


# --- is_server_shutdown -------------------------------------------------------------------------------
def test_server_shutdown_by_stream_or_event() -> None:
    assert is_server_shutdown("!serverShutdown", None) is True
    assert is_server_shutdown("!serverShutdown", {"e": "trade"}) is True
    assert is_server_shutdown(None, {"e": "serverShutdown", "E": 1}) is True
    assert is_server_shutdown("btcusdt@trade", {"e": "serverShutdown"}) is True


@pytest.mark.parametrize(
    ("stream", "obj"),
    [
        (None, None),
        (None, {}),
        (None, {"e": "trade"}),
        ("btcusdt@trade", {"e": "trade"}),
        ("serverShutdown", {"e": "ServerShutdown"}),
        (None, "serverShutdown"),
        (None, ["e"]),
    ],
)
def test_not_server_shutdown(stream: str | None, obj: object) -> None:
    assert is_server_shutdown(stream, obj) is False


def test_invalid_utf8_in_the_stream_name_is_not_a_combined_frame() -> None:
    from binance_streamd.frames import split_combined

    assert split_combined(b'{"stream":"\xff","data":1}') is None
