"""Parsers of option values: each takes the option's name and the raw value (CLI or ini) and returns the
setting, or raises ``pytest.UsageError`` naming the option and what would be valid."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

Parser = Callable[[str, Any], Any]


def usage(name: str, value: Any, valid: str) -> pytest.UsageError:
    return pytest.UsageError(
        f"--trt-{name} (ini trt_{name.replace('-', '_')}): invalid value {value!r}; {valid}"
    )


def csv(name: str, value: Any) -> list[str]:
    items = [v.strip() for v in str(value).split(",") if v.strip()]
    if not items:
        raise usage(name, value, "give a comma-separated list")
    return items


def _checked(name: str, value: Any, choices: Sequence[str]) -> list[str]:
    items = csv(name, value)
    bad = [i for i in items if i not in choices]
    if bad:
        raise usage(name, ",".join(bad), f"valid values: {', '.join(choices)}")
    return list(dict.fromkeys(items))


def several(choices: Sequence[str] | Callable[[], Sequence[str]]) -> Parser:
    """A comma list of values from ``choices`` (a callable is asked at parse time: registered backends)."""
    return lambda name, value: _checked(name, value, choices() if callable(choices) else choices)


def one_of(choices: Sequence[str]) -> Parser:
    return lambda name, value: _checked(name, value, choices)[0]


def on_off(name: str, value: Any) -> bool:
    return _checked(name, value, ("on", "off"))[0] == "on"


def ints(lo: int, hi: int | None = None) -> Parser:
    expect = f"expected integers{f' {lo}-{hi}' if hi is not None else f' >= {lo}'}"

    def parse(name: str, value: Any) -> list[int]:
        out = []
        for i in csv(name, value):
            try:
                n = int(i)
            except ValueError:
                raise usage(name, i, expect) from None
            if n < lo or (hi is not None and n > hi):
                raise usage(name, n, expect)
            out.append(n)
        return list(dict.fromkeys(out))

    return parse


def number(cast: Callable[[str], Any], lo: float) -> Parser:
    def parse(name: str, value: Any) -> Any:
        try:
            v = cast(str(value))
        except ValueError:
            raise usage(name, value, f"expected a number >= {lo}") from None
        if v < lo:
            raise usage(name, value, f"expected a number >= {lo}")
        return v

    return parse


def triple(name: str, value: Any) -> tuple[int, int, int]:
    v = ints(1)(name, value)
    if len(v) == 1:
        v = v * 3
    if len(v) != 3 or not (v[0] <= v[1] <= v[2]):
        raise usage(name, value, "expected min,opt,max with min <= opt <= max")
    return v[0], v[1], v[2]


def path(name: str, value: Any) -> Path:
    return Path(str(value)).expanduser()


def flag(name: str, value: Any) -> bool:
    return bool(value)


def not_flag(name: str, value: Any) -> bool:
    return not value


def npz(name: str, value: Any) -> str:
    p = Path(str(value)).expanduser()
    if not p.is_file():
        raise usage(
            name, str(value), "no such file: pass an .npz written by numpy.savez(path, name=array, ...)"
        )
    return str(p)


def weights(name: str, value: Any) -> str:
    v = str(value)
    if v not in ("auto", "pretrained", "random") and not v.startswith("file:"):
        raise usage(name, v, "valid values: auto, pretrained, random, file:PATH")
    return v


def gates(name: str, value: Any) -> dict[str, Any]:
    from pytest_trt.quality.gates import GateSyntaxError, parse_overrides

    try:
        return parse_overrides(list(value))
    except GateSyntaxError as exc:
        raise pytest.UsageError(str(exc)) from None


def shard(name: str, value: Any) -> tuple[int, int]:
    from pytest_trt.run.shard import parse_shard

    try:
        return parse_shard(str(value))
    except ValueError as exc:
        raise pytest.UsageError(str(exc).replace("--trt-shard", f"--trt-{name}")) from None


def lock_clocks(name: str, value: Any) -> str:
    v = str(value)
    if v in ("max", "base") or v.isdigit():
        return v
    raise usage(name, v, "valid values: max, base, or a clock in MHz")


def compute_capability(name: str, value: Any) -> str:
    """``MAJOR.MINOR``, ``SMxy`` or ``current``."""
    text = str(value).strip().lower().removeprefix("sm")
    if text == "current":
        return text
    m = re.fullmatch(r"(\d+)\.?(\d)", text)
    if not m:
        raise usage(name, value, "expected MAJOR.MINOR (e.g. 8.9), SM89 or 'current'")
    return f"{m.group(1)}.{m.group(2)}"


def shapes(name: str, value: Any) -> dict[str, tuple[int, ...]]:
    """trtexec's shape syntax (``name:1x3x224x224,...``), repeatable."""
    from pytest_trt.models.signature import ShapeSyntaxError, parse_shapes

    try:
        return parse_shapes(list(value), f"--trt-{name}")
    except ShapeSyntaxError as exc:
        raise pytest.UsageError(str(exc)) from None


def _named_items(name: str, value: Any, form: str) -> list[tuple[str, str]]:
    """``NAME:VALUE[,NAME:VALUE]`` (repeatable) -> pairs; a name may itself hold ':' (the value is
    after the last one)."""
    pairs: list[tuple[str, str]] = []
    for v in value if isinstance(value, (list, tuple)) else [value]:
        for item in str(v).split(","):
            key, sep, val = item.strip().rpartition(":")
            if not sep or not key or not val:
                raise usage(name, item, f"write {form}")
            if key in (k for k, _ in pairs):
                raise usage(name, item, f"{key!r} is given twice")
            pairs.append((key, val))
    return pairs


def batch_axes(name: str, value: Any) -> dict[str, int | None]:
    """``state:1`` (the batch is axis 1 of 'state') or ``sr:none`` (no batch axis), inputs or outputs."""
    out: dict[str, int | None] = {}
    form = "NAME:AXIS or NAME:none, e.g. state:1"
    for key, val in _named_items(name, value, form):
        if val.lower() == "none":
            out[key] = None
        elif val.isdigit():
            out[key] = int(val)
        else:
            raise usage(name, f"{key}:{val}", f"the axis is a number >= 0 or 'none'; write {form}")
    return out


def input_values(name: str, value: Any) -> dict[str, float]:
    """``sr:16000``: every sample of input 'sr' holds this number."""
    out: dict[str, float] = {}
    for key, val in _named_items(name, value, "NAME:NUMBER, e.g. sr:16000"):
        try:
            out[key] = float(val)
        except ValueError:
            raise usage(name, f"{key}:{val}", "the value is a number, e.g. sr:16000") from None
    return out


def int8_exclude(name: str, value: Any) -> str:
    """none | auto | node names (comma-separated, as the ONNX graph names them)."""
    text = str(value).strip()
    if not text:
        raise usage(name, value, "give none, auto or comma-separated ONNX node names")
    if text.lower() in ("none", "auto"):
        return text.lower()
    return ",".join(n.strip() for n in text.split(",") if n.strip())


def as_list(name: str, value: Any) -> list[str]:
    return [str(v) for v in value]


def yes_no(name: str, value: Any) -> bool:
    return _checked(name, value, ("yes", "no"))[0] == "yes"
