"""Checks of tool arguments that a JSON schema cannot express: times (ms or ISO-8601), time zones, rolling
windows, asset codes. Each raises ValueError with a message that says what is allowed."""

from __future__ import annotations

import re
from datetime import UTC, datetime

MIN_PLAUSIBLE_MS = 10**11  # 1973-03-03 in ms; smaller values are almost certainly seconds
_TZ_RE = re.compile(r"([+-]?)([0-9]{1,2})(?::([0-9]{2}))?")
_WINDOW_RE = re.compile(r"^(?:([1-9]|[1-5]\d)m|([1-9]|1\d|2[0-3])h|([1-7])d)$")
ASSET_RE = re.compile(r"^[A-Z0-9]{1,20}$")
UTC_ZONES = ("0", "+0", "-0", "00:00", "+00:00")


def parse_time_ms(value: int | str | None, name: str) -> int | None:
    """ms since the epoch from an int, a digit string, or ISO-8601 (``2024-01-01``, ``2024-01-01T12:00:00Z``;
    no offset means UTC)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be ms since the epoch or an ISO-8601 date/time, not a boolean")
    text = str(value).strip()
    if re.fullmatch(r"-?[0-9]+", text):
        if len(text) > 16:
            raise ValueError(f"{name}={text[:20]}... is out of range: pass ms since the epoch (13 digits, e.g. "
                             "1700000000000) or an ISO-8601 time")
        ms = int(text)
        if ms < 0:
            raise ValueError(f"{name} must not be negative")
        if ms < MIN_PLAUSIBLE_MS:
            raise ValueError(
                f"{name}={ms} looks like seconds (or is before 1973); pass milliseconds since the epoch "
                f"(e.g. {ms * 1000}) or an ISO-8601 time such as 2024-01-01T00:00:00Z"
            )
        return _bounded(ms, name)
    try:
        dt = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError as e:
        raise ValueError(
            f"{name}={text[:40]!r} is neither ms since the epoch nor ISO-8601 (e.g. 2024-01-01 or "
            "2024-01-01T12:30:00Z)"
        ) from e
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    ms = int(dt.timestamp() * 1000)
    if ms < 0:
        raise ValueError(f"{name} must not be before 1970-01-01")
    return _bounded(ms, name)


MAX_PLAUSIBLE_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z


def _bounded(ms: int, name: str) -> int:
    if ms > MAX_PLAUSIBLE_MS:
        raise ValueError(f"{name}={ms} is after 2100-01-01: pass ms since the epoch (e.g. 1700000000000) or an "
                         "ISO-8601 time")
    return ms


def check_time_range(start: int | None, end: int | None) -> None:
    if start is not None and end is not None and start > end:
        raise ValueError(f"start_time ({start}) is after end_time ({end})")


def check_time_zone(tz: str) -> str:
    """Binance's timeZone: hours, or hours:minutes, within -12:00 .. +14:00 (e.g. 0, 8, -5, 05:45, +08:00)."""
    m = _TZ_RE.fullmatch(tz.strip()) if tz.isascii() else None
    if not m:
        raise ValueError(f"invalid time_zone {tz!r}: use hours or hours:minutes, e.g. 0, 8, -5, +05:30, 05:45")
    sign, hh, mm = m.group(1), int(m.group(2)), int(m.group(3) or 0)
    if mm >= 60:
        raise ValueError(f"invalid time_zone {tz!r}: minutes must be below 60")
    total = (hh * 60 + mm) * (-1 if sign == "-" else 1)
    if not -12 * 60 <= total <= 14 * 60:
        raise ValueError(f"invalid time_zone {tz!r}: Binance accepts -12:00 to +14:00")
    return tz.strip()


def check_window(window: str) -> str:
    """Rolling window size: 1m..59m, 1h..23h, 1d..7d (one unit, no combinations)."""
    w = window.strip()
    if not _WINDOW_RE.match(w):
        raise ValueError(
            f"invalid window_size {window!r}: use 1m-59m, 1h-23h or 1d-7d (one unit, e.g. 15m, 4h, 7d; "
            "'1d2h' is not allowed)"
        )
    return w


def time_zone_param(tz: str) -> str | None:
    """A checked time zone as Binance's ``timeZone`` parameter (None for UTC, Binance's default)."""
    tz = check_time_zone(tz)
    return None if tz in UTC_ZONES else tz


def check_asset(name: str | None, what: str) -> str | None:
    """An asset code (BTC, USDT) upper-cased, or None."""
    if name is None:
        return None
    a = name.strip().upper()
    if not ASSET_RE.match(a):
        raise ValueError(f"invalid {what} {name!r}: an asset code such as BTC, USDT or ETH (A-Z, 0-9)")
    return a
