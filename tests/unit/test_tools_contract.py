"""The wire contract with clients: tools/list (names, input and output schemas, annotations), prompts and
resource templates, compared with the snapshot taken before the front end was restructured
(`tests/fixtures/tools-list.json`). Descriptions may improve; inputs may only gain optional arguments and
outputs only gain fields, and each such change is listed here on purpose."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from binance_common.settings import Settings

SNAPSHOT = Path(__file__).resolve().parents[1] / "fixtures" / "tools-list.json"
# (tool, "input"|"output", dotted path of a property added on purpose)
SERIES = ("get_recent_trades", "get_historical_trades", "get_aggregate_trades", "get_stream_history")
INTENDED_ADDITIONS: set[tuple[str, str, str]] = {
    # The byte budget of series answers (answer_budget_bytes): every series says whether it was cut.
    *((t, "output", f) for t in (*SERIES, "get_klines", "get_ui_klines") for f in ("truncated", "omitted")),
    # The compact (columnar) form of trades and stream history: compact=true, then columns + rows.
    *((t, "input", "compact") for t in SERIES),
    *((t, "output", f) for t in SERIES for f in ("columns", "rows")),
    # The USD-M futures book kept by the daemon (um:<symbol>@depth@100ms).
    ("get_live_order_book", "input", "venue"),
    # Whether the depth band ends inside the levels the feed holds (else its figures are a lower bound).
    ("get_live_order_book", "output", "depth.complete"),
    ("get_order_book", "output", "depth_in_band.complete"),
    ("get_futures_order_book", "output", "depth_in_band.complete"),
}
INTENDED_WIDENED: set[tuple[str, str, str]] = {
    # Binance's 2026 spot streams by kind: referencePrice, blockTrade (every earlier value still accepted).
    ("subscribe_streams", "input", "kind"),
}


def _widened(old: Any, new: Any) -> bool:
    """``new`` accepts every value ``old`` does: equal but for enums that gained values."""
    if isinstance(old, dict) and isinstance(new, dict):
        if set(old) != set(new):
            return False
        return all(set(old[k]) <= set(new[k]) if k == "enum" else _widened(old[k], new[k]) for k in old)
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(_widened(a, b) for a, b in zip(old, new, strict=True))
    return bool(old == new)


async def current() -> dict[str, Any]:
    from binance_mcp.runtime import Runtime
    from binance_mcp.server import build_server

    rt = Runtime(Settings(namespace="contract"), transport="memory")
    async with Client(build_server(rt)) as c:
        tools = (await c.list_tools()).tools
        out: dict[str, Any] = {t.name: {"input": t.input_schema, "output": t.output_schema,
                                        "annotations": t.annotations.model_dump(exclude_none=True) if t.annotations else None}
                               for t in tools}
        out["__prompts__"] = {p.name: [a.model_dump(exclude_none=True) for a in p.arguments or []]
                              for p in (await c.list_prompts()).prompts}
        out["__resource_templates__"] = sorted(t.uri_template for t in (await c.list_resource_templates()).resource_templates)
    return out


def _props(schema: dict[str, Any] | None, defs: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every property path of a JSON schema with its schema (refs resolved one level at a time)."""
    out: dict[str, Any] = {}
    if not schema:
        return out
    if "$ref" in schema:
        schema = defs.get(schema["$ref"].split("/")[-1], {})
    for name, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}{name}"
        out[path] = {k: v for k, v in sub.items() if k not in ("description", "title", "examples")}
        target = sub
        if "$ref" in sub or sub.get("type") == "object":
            out.update(_props(target, defs, path + "."))
        for key in ("anyOf", "items"):
            items = sub.get(key)
            for it in items if isinstance(items, list) else [items] if isinstance(items, dict) else []:
                if "$ref" in it:
                    out.update(_props(it, defs, path + "."))
    return out


async def test_tools_list_keeps_every_name_schema_and_annotation() -> None:
    old = json.loads(SNAPSHOT.read_text())
    new = await current()
    assert new["__prompts__"] == old["__prompts__"]
    assert new["__resource_templates__"] == old["__resource_templates__"]
    missing = sorted(set(old) - set(new))
    assert not missing, f"tools removed: {missing}"
    for name in sorted(set(old) - {"__prompts__", "__resource_templates__"}):
        o, n = old[name], new[name]
        assert n["annotations"] == o["annotations"], name
        for side in ("input", "output"):
            od = (o[side] or {}).get("$defs", {})
            nd = (n[side] or {}).get("$defs", {})
            op, np_ = _props(o[side], od), _props(n[side], nd)
            for path, schema in op.items():
                assert path in np_, f"{name} {side}: {path} disappeared"
                if (name, side, path) in INTENDED_WIDENED:
                    assert _widened(schema, np_[path]), f"{name} {side}: {path} no longer accepts what it did"
                    continue
                assert np_[path] == schema, f"{name} {side}: {path} changed: {schema} -> {np_[path]}"
            for path in set(np_) - set(op):
                assert (name, side, path) in INTENDED_ADDITIONS, f"{name} {side}: {path} added (list it if intended)"
            if side == "input":
                assert set((n[side] or {}).get("required", [])) <= set((o[side] or {}).get("required", [])), name


@pytest.mark.parametrize("name", ["get_klines", "get_stream_history"])
async def test_the_snapshot_is_real(name: str) -> None:
    assert name in json.loads(SNAPSHOT.read_text())
