"""Small, consistent ways to write times, durations, sizes and counts in the report."""

from __future__ import annotations

from datetime import UTC, datetime


def when(moment: datetime | None) -> str:
    if moment is None:
        return "unknown"
    try:
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (ValueError, OverflowError):
        return str(moment)


def seconds(value: float | None) -> str:
    if value is None:
        return "unknown"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.2f} s"
    minutes, secs = divmod(int(round(value)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min {secs:02d} s" if hours else f"{minutes} min {secs:02d} s"


def size(value: int | None) -> str:
    if value is None:
        return "? B"
    if value < 1024:
        return f"{value} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value_f = value / 1024
        if value_f < 1024 or unit == "TiB":
            return f"{value_f:.1f} {unit}"
        value = int(value_f)
    return f"{value} B"


def count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


def yes_no(value: bool | None, unknown: str = "unknown") -> str:
    return unknown if value is None else ("yes" if value else "no")
