"""Parsers of single config values (integers, durations, sizes, names), naming their field."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from simstudy.errors import InputError

#: What a ``_target_`` in a config may name: nothing else is ever instantiated from config.
TARGET_PREFIXES = ("simstudy.", "dask_jobqueue.", "distributed.", "dask_kubernetes.")


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _section(raw: Any, name: str, allowed: Sequence[str] | None) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise InputError(name, raw, "a mapping of settings")
    unknown = [] if allowed is None else sorted(set(raw) - set(allowed))
    if unknown:
        raise InputError(
            f"{name}.{unknown[0]}", raw[unknown[0]], "known keys are " + ", ".join(allowed)
        )
    return dict(raw)


def _int(name: str, value: Any, low: int, *, none_ok: bool = False) -> int | None:
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        extra = " or null" if none_ok else ""
        raise InputError(name, value, f"an integer >= {low}{extra}")
    return value


def _unit(name: str, value: Any, *, closed: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = 0 <= value <= 1 if closed else 0 < value < 1
    if not ok:
        raise InputError(name, value, "a number in [0, 1]" if closed else "a number in (0, 1)")
    return float(value)


_WALLTIME_RE = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def walltime_seconds(text: Any) -> int | None:
    """Seconds in a SLURM time limit: M, M:S, H:M:S, D-H, D-H:M or D-H:M:S; None if not one."""
    if not isinstance(text, str):
        return None
    m = _WALLTIME_RE.match(text.strip())
    if m is None:
        return None
    days, a, b, c = m.groups()
    parts = [int(x) for x in (a, b, c) if x is not None]
    if days is not None:  # D-H, D-H:M, D-H:M:S
        h, mi, se = ([*parts, 0, 0])[:3]
        return ((int(days) * 24 + h) * 60 + mi) * 60 + se
    if len(parts) == 1:  # minutes
        return parts[0] * 60
    if len(parts) == 2:  # minutes:seconds
        return parts[0] * 60 + parts[1]
    return (parts[0] * 60 + parts[1]) * 60 + parts[2]


_BYTES_RE = re.compile(r"^\s*\d+(\.\d+)?\s*(b|[kmgtp]i?b?)?\s*$", re.IGNORECASE)


_K8S_QUANTITY_RE = re.compile(r"^\d+(\.\d+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$")


def _text(name: str, value: Any, *, none_ok: bool = True, what: str = "a string") -> str | None:
    if value is None and none_ok:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InputError(name, value, what + (" or null" if none_ok else ""))
    return value


def _seconds(name: str, value: Any, *, none_ok: bool = False, low: float = 0.0) -> float | None:
    if value is None and none_ok:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < low:
        raise InputError(
            name, value, f"a number of seconds >= {low:g}" + (" or null" if none_ok else "")
        )
    return float(value)


def _lines(name: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InputError(name, value, "a list of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise InputError(f"{name}[{i}]", item, "a string")
    return tuple(value)


def _timeout(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InputError(name, value, "a number of seconds > 0, or null")
    if not math.isfinite(value):
        return None
    return float(value)


_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}


def size_bytes(text: str) -> int | None:
    """Bytes in a size such as ``"500MB"``, ``"2GiB"`` or ``"4G"``; None if it is not one."""
    m = _BYTES_RE.match(str(text))
    if m is None:
        return None
    unit = (m.group(2) or "").lower()
    binary = "i" in unit
    factor = 1024 ** "bkmgtp".index(unit[0]) if binary else _UNITS[unit[:1]]
    return int(float(str(text).strip()[: m.start(2) if m.group(2) else None]) * factor)


def _memory_limit(value: Any) -> str:
    if value == "auto":
        return "auto"
    size = size_bytes(value) if isinstance(value, str | int) else None
    if not size:
        raise InputError(
            "executor.memory_limit", value, '"auto" or a size such as "2GiB" or "500MB"'
        ) from None
    return str(value)
