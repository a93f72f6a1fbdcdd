"""binance_common.feedstore: the layout contract of every Redis value the daemon and the MCP front end share.

Redis hands back bytes keys and values (or str with ``decode_responses``); both must decode the same.
"""

from __future__ import annotations

import orjson
import pytest

from binance_common.feedstore import (
    F_BACKFILL,
    F_DATA,
    F_GAP,
    F_RECV,
    BookState,
    BookValue,
    DataEntry,
    GapEntry,
    StatusRecord,
    StreamState,
    book_marker,
    decode_book,
    decode_history,
    decode_latest,
    encode_gap,
    entry_last_id,
    live_book_json,
    parse_token,
)

PAYLOAD = b'{"e": "trade", "t": 42, "p": "1.10", "q": 1.10}'


def as_bytes(d: dict[str, object]) -> dict[bytes, bytes]:
    return {k.encode(): (v if isinstance(v, bytes) else str(v).encode()) for k, v in d.items()}


def test_field_names_and_enum_values_are_the_contract() -> None:
    assert (F_DATA, F_RECV, F_BACKFILL, F_GAP) == ("d", "r", "b", "g")
    assert [s.value for s in StreamState] == ["pending", "catching_up", "live", "failed"]
    assert [s.value for s in BookState] == ["live", "syncing", "unsubscribed"]


# --- history: gap entries -----------------------------------------------------------------------------
def test_encode_gap_exact_bytes() -> None:
    assert encode_gap(5, 9, "too old") == b'{"from":5,"to":9,"reason":"too old"}'
    assert encode_gap(None, 12, "") == b'{"from":null,"to":12,"reason":""}'


def test_gap_round_trip_with_bytes_keys() -> None:
    raw = {b"g": encode_gap(5, 9, "endpoint unavailable"), b"r": b"1700000000123"}
    assert decode_history(raw) == GapEntry(5, 9, "endpoint unavailable", 1700000000123)


def test_gap_round_trip_with_str_keys_and_values() -> None:
    raw = {"g": encode_gap(None, 12, "too many").decode(), "r": "7"}
    assert decode_history(raw) == GapEntry(None, 12, "too many", 7)


def test_gap_tolerates_missing_or_null_parts() -> None:
    entry = decode_history({b"g": b'{"to": "12", "reason": null}'})
    assert entry == GapEntry(None, 12, "", 0)
    assert type(entry.to_id) is int  # type: ignore[union-attr]
    assert decode_history({b"g": b'{"to": 3}', b"r": b""}) == GapEntry(None, 3, "", 0)


def test_gap_field_wins_over_data_field() -> None:
    raw = {b"g": encode_gap(1, 2, "x"), b"d": PAYLOAD, b"r": b"5"}
    assert decode_history(raw) == GapEntry(1, 2, "x", 5)


# --- history: data entries ----------------------------------------------------------------------------
def test_data_entry_bytes_keys() -> None:
    entry = decode_history({b"d": PAYLOAD, b"r": b"1700000000123"})
    assert entry == DataEntry({"e": "trade", "t": 42, "p": "1.10", "q": 1.1}, 1700000000123, False)
    assert type(entry.backfilled) is bool  # type: ignore[union-attr]


def test_data_entry_str_keys_and_backfill_flag() -> None:
    assert decode_history({"d": PAYLOAD.decode(), "r": "5", "b": "1"}) == DataEntry(
        orjson.loads(PAYLOAD), 5, True)
    assert decode_history({b"d": PAYLOAD, b"r": b"5", b"b": b"1"}).backfilled is True  # type: ignore[union-attr]
    assert decode_history({b"d": PAYLOAD, b"r": b"5", b"b": 1}).backfilled is True  # type: ignore[union-attr]
    assert decode_history({b"d": PAYLOAD, b"r": b"5", b"b": b"0"}).backfilled is False  # type: ignore[union-attr]
    assert decode_history({b"d": PAYLOAD, b"r": b"5", b"b": b""}).backfilled is False  # type: ignore[union-attr]
    assert decode_history({b"d": PAYLOAD, b"r": b"5", b"b": b"11"}).backfilled is False  # type: ignore[union-attr]


def test_data_entry_defaults_when_fields_are_missing() -> None:
    assert decode_history({}) == DataEntry(None, 0, False)
    assert decode_history({b"d": b"[1.10, 2]"}) == DataEntry([1.1, 2], 0, False)
    assert decode_history({b"r": b"9"}) == DataEntry(None, 9, False)


def test_data_entry_keeps_int_receive_ms() -> None:
    entry = decode_history({"d": "1", "r": 1700000000123})
    assert entry == DataEntry(1, 1700000000123, False)
    assert type(entry.received_ms) is int


# --- entry_last_id ------------------------------------------------------------------------------------
def test_entry_last_id_of_a_gap_is_its_to() -> None:
    assert entry_last_id(GapEntry(3, 9, "x", 0), "t") == 9
    assert entry_last_id(GapEntry(None, 4, "x", 0), "a") == 4


def test_entry_last_id_of_data_reads_the_id_field() -> None:
    entry = DataEntry({"t": 42, "a": 7}, 0, False)
    assert entry_last_id(entry, "t") == 42
    assert entry_last_id(entry, "a") == 7
    assert entry_last_id(DataEntry({"t": 0}, 0, False), "t") == 0


@pytest.mark.parametrize(
    "payload",
    [{"a": 7}, {"t": True}, {"t": False}, {"t": "42"}, {"t": 42.0}, {"t": None}, [42], None, 42, "t"],
)
def test_entry_last_id_none_without_an_integer_id(payload: object) -> None:
    assert entry_last_id(DataEntry(payload, 0, False), "t") is None


# --- latest -------------------------------------------------------------------------------------------
def test_decode_latest_bytes_and_str() -> None:
    blob = b'{"r": 1700000000123, "d": {"p": "1.10", "q": 1.10}}'
    assert decode_latest(blob) == (1700000000123, {"p": "1.10", "q": 1.1})
    assert decode_latest(blob.decode()) == (1700000000123, {"p": "1.10", "q": 1.1})
    assert decode_latest(b'{"r": "5", "d": null}') == (5, None)
    out = decode_latest(b'{"r": 5.0, "d": 1}')
    assert out == (5, 1) and type(out[0]) is int  # type: ignore[index]


@pytest.mark.parametrize(
    "blob",
    [
        None,
        b"",
        b"{not json",
        b'{"d": 1}',  # no r: KeyError
        b'{"r": 5}',  # no d: KeyError
        b'{"r": "x", "d": 1}',  # ValueError
        b'{"r": null, "d": 1}',  # TypeError
        b"[1, 2]",  # TypeError
        b"null",
        "{",
    ],
)
def test_decode_latest_unreadable_gives_none(blob: bytes | str | None) -> None:
    assert decode_latest(blob) is None


# --- books --------------------------------------------------------------------------------------------
def test_live_book_json_exact_bytes_and_round_trip() -> None:
    bids, asks = [["1.10", "2.00"]], [["1.20", "3"], ["1.30", "0.5"]]
    blob = live_book_json("BTCUSDT", 5, 10, 11, 12, bids, asks)
    assert blob == (b'{"symbol":"BTCUSDT","state":"live","since":5,"lastUpdateId":10,"E":11,"asof":12,'
                    b'"bids":[["1.10","2.00"]],"asks":[["1.20","3"],["1.30","0.5"]]}')
    value = decode_book(blob)
    assert value == BookValue("BTCUSDT", BookState.LIVE, 5, 10, 11, 12, bids, asks)
    assert value is not None and value.live is True and value.state is BookState.LIVE


@pytest.mark.parametrize("state", [BookState.SYNCING, BookState.UNSUBSCRIBED])
def test_book_marker_exact_bytes_and_round_trip(state: BookState) -> None:
    blob = book_marker("ETHUSDT", state, 1700000000123)
    assert blob == (b'{"symbol":"ETHUSDT","state":"' + state.value.encode() + b'","since":1700000000123,'
                    b'"lastUpdateId":null,"E":null,"asof":null,"bids":[],"asks":[]}')
    value = decode_book(blob)
    assert value == BookValue("ETHUSDT", state, since=1700000000123)
    assert value is not None and value.live is False and value.state is state
    assert value.bids == [] and value.asks == [] and value.last_update_id is None


def test_decode_book_str_input() -> None:
    blob = live_book_json("BNBBTC", None, 3, None, None, [], []).decode()
    assert decode_book(blob) == BookValue("BNBBTC", BookState.LIVE, None, 3, None, None, [], [])


def test_decode_book_without_state_counts_as_live() -> None:
    old = b'{"symbol": "BTCUSDT", "lastUpdateId": 10, "E": 11, "bids": [["1.10", "2"]], "asks": []}'
    value = decode_book(old)
    assert value == BookValue("BTCUSDT", BookState.LIVE, None, 10, 11, None, [["1.10", "2"]], [])
    assert value is not None and value.live is True
    assert decode_book(b'{"symbol": "X", "state": null}') == BookValue("X", BookState.LIVE)
    assert decode_book(b'{"symbol": "X", "state": ""}') == BookValue("X", BookState.LIVE)


def test_decode_book_null_levels_are_empty_lists_and_symbol_is_text() -> None:
    value = decode_book(b'{"symbol": 7, "state": "syncing", "since": 4, "bids": null, "asks": null}')
    assert value == BookValue("7", BookState.SYNCING, since=4)
    assert value is not None and value.bids == [] and value.asks == [] and type(value.symbol) is str


@pytest.mark.parametrize(
    "blob",
    [
        None,
        b"",
        b"{not json",
        b'{"state": "live"}',  # no symbol
        b'{"symbol": "X", "state": "bogus"}',  # unknown state
        b'{"symbol": "X", "state": "LIVE"}',
        b'{"symbol": "X", "bids": 5}',  # levels not iterable
    ],
)
def test_decode_book_unreadable_gives_none(blob: bytes | str | None) -> None:
    assert decode_book(blob) is None


def test_book_value_live_property_per_state() -> None:
    assert BookValue("X", BookState.LIVE).live is True
    assert BookValue("X", BookState.SYNCING).live is False
    assert BookValue("X", BookState.UNSUBSCRIBED).live is False


# --- status -------------------------------------------------------------------------------------------
FULL = StatusRecord(state=StreamState.LIVE.value, reason="refused: x", conn="c1", since=1, first_ack=2,
                    last_recv=3, last_event=4, msgs=5, dups=6, gaps_found=7, gaps_filled=8, gaps_unfilled=9,
                    ids_missing=10, reconnects=11, rate=2.5, updated=12)


def test_status_to_hash_exact() -> None:
    assert FULL.to_hash() == {
        "state": "live", "reason": "refused: x", "conn": "c1", "since": 1, "first_ack": 2, "last_recv": 3,
        "last_event": 4, "msgs": 5, "dups": 6, "gaps_found": 7, "gaps_filled": 8, "gaps_unfilled": 9,
        "ids_missing": 10, "reconnects": 11, "rate": 2.5, "updated": 12,
    }
    assert StatusRecord().to_hash() == {
        "state": "pending", "reason": "", "conn": "", "since": 0, "first_ack": 0, "last_recv": 0,
        "last_event": 0, "msgs": 0, "dups": 0, "gaps_found": 0, "gaps_filled": 0, "gaps_unfilled": 0,
        "ids_missing": 0, "reconnects": 0, "rate": 0.0, "updated": 0,
    }


def test_status_round_trip_through_redis_bytes() -> None:
    back = StatusRecord.from_hash(as_bytes(FULL.to_hash()))
    assert back == FULL
    assert back is not None
    assert type(back.state) is str and type(back.reason) is str and type(back.msgs) is int
    assert type(back.rate) is float


def test_status_round_trip_with_str_keys_and_native_values() -> None:
    assert StatusRecord.from_hash(FULL.to_hash()) == FULL
    assert StatusRecord.from_hash({k: str(v) for k, v in FULL.to_hash().items()}) == FULL


def test_status_rate_is_float_even_when_integral() -> None:
    rec = StatusRecord.from_hash({b"rate": b"3"})
    assert rec is not None and rec.rate == 3.0 and type(rec.rate) is float


def test_status_missing_unknown_and_bad_fields_keep_defaults() -> None:
    rec = StatusRecord.from_hash({b"msgs": b"3", b"unknown": b"x", b"dups": b"1.5", b"rate": b"fast",
                                  b"gaps_found": b"", b"since": b"", b"reason": b""})
    assert rec == StatusRecord(msgs=3)
    # an empty integer reads as 0; a bad one is skipped and the following fields are still read
    rec = StatusRecord.from_hash({"since": "", "first_ack": "x", "last_recv": "8", "state": "failed"})
    assert rec == StatusRecord(state="failed", last_recv=8)


def test_status_empty_or_absent_hash_is_none() -> None:
    assert StatusRecord.from_hash(None) is None
    assert StatusRecord.from_hash({}) is None


def test_status_numeric_text_field_stays_text() -> None:
    rec = StatusRecord.from_hash({b"reason": b"42", b"conn": b""})
    assert rec is not None and rec.reason == "42" and rec.conn == ""


# --- leadership token ---------------------------------------------------------------------------------
def test_parse_token_str_and_bytes() -> None:
    expected = {"epoch": 3, "host": "host-a", "pid": 1234, "nonce": "9f2c"}
    assert parse_token("3:host-a:1234:9f2c") == expected
    assert parse_token(b"3:host-a:1234:9f2c") == expected
    assert parse_token("0::1:") == {"epoch": 0, "host": "", "pid": 1, "nonce": ""}
    assert parse_token("12:7:0:x") == {"epoch": 12, "host": "7", "pid": 0, "nonce": "x"}


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "3:host:1234",  # three parts
        "3:host:1234:n:extra",  # five parts
        "x:host:1234:n",  # epoch not a number
        ":host:1234:n",
        "-1:host:1234:n",
        "3:host:p1:n",  # pid not a number
        "3:host::n",
        b"3:host:x:n",
        "3-host-1234-n",
    ],
)
def test_parse_token_foreign_gives_none(token: str | bytes | None) -> None:
    assert parse_token(token) is None


def test_foreign_values_read_as_absent_rather_than_raising() -> None:
    from binance_common.feedstore import decode_book, parse_token

    for blob in (b"null", b"[1]", b'"x"', b"1"):
        assert decode_book(blob) is None
    assert parse_token("²:h:1:n") is None and parse_token("1:h:¹:n") is None
