"""The value layouts written next to the codec (the ``feedstore`` module docstring) match the codec: every
status field, every book key and every history field the code writes is documented, and nothing else is."""

from __future__ import annotations

import re
from dataclasses import fields

import orjson

from binance_common import feedstore, keys
from binance_common.feedstore import BookState, StatusRecord, book_marker, encode_gap, live_book_json

DOC = feedstore.__doc__ or ""


def section(prefix: str) -> str:
    """The bullet of the docstring that starts with ``prefix`` (up to the next bullet)."""
    m = re.search(r"\* ``" + re.escape(prefix) + r".*?(?=\n\* |\Z)", DOC, re.S)
    assert m, f"the feedstore docstring has no bullet for {prefix}"
    return m.group(0)


def test_status_fields_are_documented_exactly() -> None:
    documented = set(re.findall(r"``([a-z_]+)``", section("status:<stream>")))
    written = {f.name for f in fields(StatusRecord)}
    assert written <= documented, f"status fields written but not documented: {written - documented}"
    assert documented - written <= {"status:<stream>"}, f"documented but never written: {documented - written}"
    assert set(StatusRecord().to_hash()) == written


def test_book_keys_are_documented() -> None:
    doc = section("book:<SYMBOL>")
    live = orjson.loads(live_book_json("BTCUSDT", 1, 2, 3, 4, [["1", "2"]], [["3", "4"]]))
    marker = orjson.loads(book_marker("BTCUSDT", BookState.SYNCING, 5))
    for key in set(live) | set(marker):
        assert f'"{key}"' in doc, f"book key {key!r} is not documented"
    assert set(live) == set(marker)
    for state in BookState:
        assert state.value in DOC, f"book state {state.value!r} is not documented"


def test_history_fields_are_documented() -> None:
    doc = section("hist:<stream>")
    for name in (feedstore.F_DATA, feedstore.F_RECV, feedstore.F_BACKFILL, feedstore.F_GAP):
        assert f"``{name}``" in doc, f"history field {name!r} is not documented"
    gap = orjson.loads(encode_gap(1, 2, "why"))
    for key in gap:
        assert f'"{key}"' in doc, f"gap key {key!r} is not documented"


def test_keys_doc_points_to_the_codec_for_every_shared_value() -> None:
    doc = keys.__doc__ or ""
    for prefix in ("latest:", "hist:", "status:", "book:", "daemon:leader"):
        assert f"``{prefix}``" in doc and f"``{prefix}" in DOC
