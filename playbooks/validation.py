"""Turns parsed TOML into frozen config dataclasses, naming the key path and line of every fault.

tomllib keeps no positions, so `key_lines` rescans the text for table headers and `key =` lines;
`build` walks a dataclass's annotated fields and checks names, types, ranges and choices.
"""

from __future__ import annotations

import dataclasses
import re
import string
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any

from connector.errors import PlaybookError

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*=")


def _split_dotted(text: str) -> list[str]:
    parts = re.findall(r"\"[^\"]*\"|'[^']*'|[A-Za-z0-9_-]+", text)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


def key_lines(text: str) -> dict[str, int]:
    """Map key paths (`rules.calendar.steps[1].day`) to 1-based line numbers in a TOML text."""
    lines: dict[str, int] = {}
    counters: dict[str, int] = {}
    prefix = ""
    depth = 0  # open brackets of a multi-line array; keys inside are not top-level
    in_string = False  # inside a multi-line """ or ''' string
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        quotes = line.count('"""') + line.count("'''")
        if in_string:
            in_string = quotes % 2 == 0
            continue
        if quotes % 2 == 1:
            in_string = True  # the key on this line is still recorded below
        if depth > 0:
            depth += _bracket_balance(line)
            continue
        if not line or line.startswith("#"):
            continue
        head = _HEADER.match(line)
        if head and not _KEY.match(line):
            parts = _split_dotted(head.group(2))
            base = ".".join(parts)
            path = _resolve(parts, counters)
            if head.group(1) == "[[":
                idx = counters.get(base, -1) + 1
                counters[base] = idx
                # a new array element resets counters of its sub-arrays
                for k in [k for k in counters if k.startswith(base + ".")]:
                    del counters[k]
                path = f"{path}[{idx}]"
            prefix = path
            lines.setdefault(path, no)
            continue
        key = _KEY.match(line)
        if key:
            parts = _split_dotted(key.group(1))
            path = ".".join(([prefix] if prefix else []) + parts)
            lines.setdefault(path, no)
            value = line[key.end():]
            depth = max(0, _bracket_balance(value))
    return lines


def _resolve(parts: list[str], counters: dict[str, int]) -> str:
    """Rewrite a header path so that parts naming an array of tables carry its current index."""
    out: list[str] = []
    for i, part in enumerate(parts):
        out.append(part)
        base = ".".join(parts[: i + 1])
        if i < len(parts) - 1 and base in counters:
            out[-1] = f"{part}[{counters[base]}]"
    return ".".join(out)


def _bracket_balance(text: str) -> int:
    text = re.sub(r"\"(?:\\.|[^\"\\])*\"|'[^']*'", "", text)
    text = text.split("#", 1)[0]
    return text.count("[") + text.count("{") - text.count("]") - text.count("}")


class Locator:
    """Finds the line and file of a key path across the files a playbook was merged from."""

    def __init__(self, sources: list[tuple[str, dict[str, int]]]) -> None:
        self.sources = sources  # highest priority first

    def where(self, path: str) -> tuple[str, int | None]:
        probe = path
        while True:
            for source, lines in self.sources:
                if probe in lines:
                    return source, lines[probe]
            if not probe:
                break
            probe = re.sub(r"(\[\d+\]|\.?[^.\[]+)$", "", probe)
        return (self.sources[0][0] if self.sources else ""), None

    def error(self, path: str, message: str, hint: str = "") -> PlaybookError:
        source, line = self.where(path)
        return PlaybookError(path, message, hint=hint, line=line, source=source)


def placeholders(text: str) -> list[str]:
    """The `{name}` placeholders of a template; raises ValueError on a malformed one."""
    names = []
    for _lit, name, _spec, _conv in string.Formatter().parse(text):
        if name is not None:
            names.append(name)
    return names


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is list:
        return f"array of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"table of {_type_name(typing.get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "table"
    return {int: "integer", float: "number", str: "string", bool: "true/false"}.get(tp, str(tp))


def build(cls: type, data: Any, path: str, loc: Locator) -> Any:
    """Build dataclass `cls` from a TOML table, validating every key against its fields.

    Field metadata understood: `min`, `max`, `choices`, `template` (placeholders allowed),
    `required`. A class may define `check(self) -> list[(subkey, message, hint)]` for
    cross-field rules.
    """
    if not isinstance(data, Mapping):
        raise loc.error(path, f"expected a table, got {_toml_type(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")}
    for key in data:
        if key not in fields:
            near = _closest(key, fields)
            hint = f"did you mean {near!r}? " if near else ""
            raise loc.error(_join(path, key), "unknown key",
                            hint=f"{hint}allowed keys: {', '.join(sorted(fields))}")
    kwargs = {}
    hints = _hints(cls)
    for name, f in fields.items():
        sub = _join(path, name)
        if name not in data:
            if f.metadata.get("required"):
                raise loc.error(sub, "missing required key", hint=f.metadata.get("doc", ""))
            continue
        kwargs[name] = convert(hints[name], data[name], sub, loc, f.metadata)
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        for subkey, message, hint in check():
            raise loc.error(_join(path, subkey), message, hint)
    return obj


def convert(tp: Any, value: Any, path: str, loc: Locator, meta: Mapping[str, Any] | None = None) -> Any:
    meta = meta or {}
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        last: PlaybookError | None = None
        for arg in args:
            try:
                return convert(arg, value, path, loc, meta)
            except PlaybookError as exc:
                last = exc
        assert last is not None
        if len(args) == 1:
            raise last
        raise loc.error(path, f"expected {_type_name(tp)}, got {_toml_type(value)}")
    if origin is list:
        if not isinstance(value, list):
            raise loc.error(path, f"expected {_type_name(tp)}, got {_toml_type(value)}")
        (item,) = typing.get_args(tp)
        return [convert(item, v, f"{path}[{i}]", loc, meta) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise loc.error(path, f"expected {_type_name(tp)}, got {_toml_type(value)}")
        _k, item = typing.get_args(tp)
        return {str(k): convert(item, v, _join(path, str(k)), loc, meta) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path, loc)
    if tp is bool:
        if not isinstance(value, bool):
            raise loc.error(path, f"expected true/false, got {_toml_type(value)}")
        return value
    if tp in (int, float):
        ok = isinstance(value, int) and not isinstance(value, bool)
        if tp is float:
            ok = ok or isinstance(value, float)
        if not ok:
            raise loc.error(path, f"expected {_type_name(tp)}, got {_toml_type(value)}")
        lo, hi = meta.get("min"), meta.get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = f"from {lo if lo is not None else '-inf'} to {hi if hi is not None else 'inf'}"
            raise loc.error(path, f"{value} is out of range", hint=f"allowed: {bounds}")
        return tp(value)
    if tp is str:
        if not isinstance(value, str):
            raise loc.error(path, f"expected a string, got {_toml_type(value)}")
        choices = meta.get("choices")
        if choices and value not in choices:
            raise loc.error(path, f"unknown value {value!r}", hint=f"allowed values: {', '.join(choices)}")
        allowed = meta.get("template")
        if allowed is not None:
            try:
                names = placeholders(value)
            except ValueError as exc:
                raise loc.error(path, f"malformed template: {exc}",
                                hint="write {name}; a literal brace is {{ or }}") from None
            for name in names:
                if name not in allowed:
                    raise loc.error(path, f"unknown placeholder {{{name}}}",
                                    hint="allowed placeholders: " + ", ".join("{" + a + "}" for a in sorted(allowed)))
        return value
    raise TypeError(f"unsupported config type {tp!r} at {path}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _toml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__


def _closest(key: str, names: Mapping[str, Any]) -> str | None:
    import difflib

    found = difflib.get_close_matches(key, list(names), n=1, cutoff=0.6)
    return found[0] if found else None


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; any other value (arrays included) replaces the base's."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
