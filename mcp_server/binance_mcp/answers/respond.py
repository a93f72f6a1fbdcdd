"""Turning an answer model into a tool result: one :func:`respond`, the null policy of each answer, list
truncation, and the byte budget that keeps a series inside an agent's context.

Null policy: market answers drop null fields (a missing ``hint`` says nothing), stream answers keep them
(``as_of: null`` says "no data yet"); each answer class declares which with ``keep_nulls``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal

import orjson
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, Field


class Answer(BaseModel):
    """Base of every tool answer."""

    keep_nulls: ClassVar[bool] = False


class LiveAnswer(Answer):
    """An answer about the live feed: nulls are kept (``as_of: null`` means there is no data yet)."""

    keep_nulls: ClassVar[bool] = True


def dump(model: BaseModel) -> dict[str, Any]:
    """The JSON-ready dict of an answer under its null policy."""
    keep = getattr(type(model), "keep_nulls", False)
    return model.model_dump(mode="json", exclude_none=not keep)


def respond(model: BaseModel) -> CallToolResult:
    """A tool result: structured content validated by the tool's output schema, and the same data as compact
    JSON text (no indentation) for clients that only read text."""
    data = dump(model)
    return _result(data, orjson.dumps(data))


def _result(data: dict[str, Any], text: bytes) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text.decode())], structured_content=data)


class Truncation(Answer):
    """How a list answer was cut to stay small."""

    total: int = Field(description="Items that matched the filters before the limit was applied.")
    returned: int
    truncated: bool = Field(description="True when more items matched than were returned.")
    hint: str | None = Field(None, description="How to get more or narrower results.")


class Series(Answer):
    """A series answer cut to the byte budget (``answer_budget_bytes``) when it would not fit."""

    truncated: bool = Field(
        False, description="True when rows were left out to keep the answer within the byte budget "
        "(answer_budget_bytes, about 20 KB of text by default); `hint` and the cursor fields say how to continue."
    )
    omitted: int = Field(0, description="Rows left out by the byte budget.")


def more_hint(total: int, shown: int, max_limit: int, narrow: str) -> str | None:
    """What to do when a list was cut to ``max_limit`` or a smaller ``limit``."""
    if total <= shown:
        return None
    if shown < max_limit:
        return f"showing {shown} of {total}; raise limit (max {max_limit}) or {narrow}"
    return f"showing {shown} of {total} (the maximum); {narrow}"


def respond_within(
    rows: Sequence[Any],
    build: Callable[[Sequence[Any]], BaseModel],
    budget: int,
    *,
    keep: Literal["first", "last"] = "first",
    size_of: Callable[[Any], int] | None = None,
) -> CallToolResult:
    """The result of ``build(rows)``, with rows dropped (from the end, or with ``keep="last"`` from the start)
    until its JSON text fits ``budget`` bytes (0: no limit). At least one row is kept, so an answer always
    makes progress along its cursor.

    An answer that fits is encoded once; one that does not is measured row by row (the rows' sizes give the
    cut directly) and built and encoded once more.
    """
    data = dump(build(rows))
    text = orjson.dumps(data)
    if budget <= 0 or len(rows) <= 1 or len(text) <= budget:
        return _result(data, text)
    measure = size_of or (lambda r: len(orjson.dumps(dump(r) if isinstance(r, BaseModel) else r)))
    sizes = [measure(r) + 1 for r in rows]  # +1: the comma between rows
    room = budget - (len(text) - sum(sizes)) - 200  # slack for the fields the cut adds (truncated, cursor, hint)
    order = range(len(rows)) if keep == "first" else range(len(rows) - 1, -1, -1)
    n = 0
    for i in order:
        room -= sizes[i]
        if room < 0:
            break
        n += 1
    n = max(1, n)
    return respond(build(rows[:n] if keep == "first" else rows[len(rows) - n :]))
