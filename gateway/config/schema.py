"""The config schema: every key with its type, default and a one-line doc, checked one way.

A table is ``{key: Key}``. ``section(mapping, TABLE, problems, where)`` checks one YAML mapping
against it and returns a LineDict (a dict that still knows the file and each key's line) with
every default filled in, nested tables included; unknown keys, wrong types, missing required
keys, values outside ``choices`` and failed ``check``s become Problems with file and line.
A value that fails is reported and replaced by its default, so the caller always gets typed
values. An empty value (``key:``) means the default.

The core's tables (ticketgate.yaml, queues.yaml, agents.yaml) are in core_keys.py; other
parts of ticketgate declare theirs beside their code and expose them in ``ConfigSection.keys``
(``check-config --defaults`` prints them all, see defaults.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from gateway.config.yamlload import LineDict, LineList, Problem


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()   # as a Key's default: the key must be given


@dataclass(frozen=True)
class Key:
    """One key: its type, default and a one-line doc, and optionally:

    ``choices``  the allowed values (for a list: of each item);
    ``check``    ``check(value) -> message | None`` for what a type cannot say ("must be
                 positive"); the problem reads ``WHERE: KEY MESSAGE, got VALUE``;
    ``keys``     the value is a mapping with these keys of its own (a nested table);
    ``each``     the value is a list of mappings with these keys (type list), or a mapping
                 from names the admin chooses to such mappings (type dict);
    ``item``     what one of ``each`` is called in messages ("queue" -> "queue 'VIP'");
    ``noun``     what a key of ``keys`` is called in "unknown ..." messages ("pre-filter");
    ``example``  shown by ``check-config --defaults`` where there is no default (a required
                 key's value, the name of an ``each`` entry)."""

    type: type | tuple
    default: Any
    doc: str
    choices: tuple = ()
    check: Callable[[Any], str | None] | None = None
    keys: dict | None = None
    each: dict | None = None
    item: str = ""
    noun: str = "key"
    example: Any = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def fresh_default(self):
        """The default as a new object (lists and mappings are never shared)."""
        if self.required:
            return None
        return self.default() if callable(self.default) else self.default


# ---- simple per-key checks ---------------------------------------------------------------
def positive(value) -> str | None:
    return None if value > 0 else "must be positive"


def not_negative(value) -> str | None:
    return None if value >= 0 else "must not be negative"


def port(value) -> str | None:
    return None if 0 < value < 65536 else "is a bad port (1-65535)"


_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


def email(value) -> str | None:
    return None if _EMAIL.match(value) else "is not an email address"


# ---- checking ----------------------------------------------------------------------------
def _type_name(t) -> str:
    if isinstance(t, tuple):
        return " or ".join(_type_name(x) for x in t)
    return {str: "text", int: "a whole number", bool: "yes/no", list: "a list",
            dict: "a mapping", float: "a number"}.get(t, t.__name__)


def _isinstance(value, want) -> bool:
    wants = want if isinstance(want, tuple) else (want,)
    if isinstance(value, bool):
        return bool in wants
    return isinstance(value, wants)


def _coerce(value, want):
    """YAML reads ``port: 25`` as a number and ``system_id: 10`` too: text keys take
    numbers as text, number keys take whole numbers."""
    wants = want if isinstance(want, tuple) else (want,)
    if isinstance(value, bool) or _isinstance(value, want):
        return value
    if float in wants and isinstance(value, int):
        return float(value)
    if str in wants and isinstance(value, (int, float)):
        return str(value)
    return value


def join(where: str, key) -> str:
    """How a nested place is named: a key of a file is itself, a key of something named
    (``queue 'VIP'``) follows a colon, any other follows a dot."""
    if where.endswith(".yaml") or not where:
        return str(key)
    return f"{where}: {key}" if where.endswith("'") else f"{where}.{key}"


def _blank(file, line) -> LineDict:
    out = LineDict()
    out.file, out.line, out.key_lines = file, line, {}
    return out


def section(mapping, spec: dict[str, Key], problems: list[Problem], where: str,
            noun: str = "key") -> LineDict:
    """Check ``mapping`` against ``spec``; return its values with defaults applied."""
    file, line = getattr(mapping, "file", "?"), getattr(mapping, "line", 0)
    out = _blank(file, line)
    if mapping is not None and not isinstance(mapping, dict):
        problems.append(Problem(file, line, f"{where} must be a mapping"))
        mapping = None
    given = mapping or {}
    for name, value in given.items():
        if name not in spec:
            known = ", ".join(map(str, spec))
            problems.append(Problem(file, _line_of(mapping, name),
                                    f"unknown {noun} {name!r} in {where} (known {noun}s: "
                                    f"{known})"))
    for name, key in spec.items():
        at = _line_of(mapping, name) if name in given else line
        value = given.get(name)
        if value is None:
            if key.required and mapping is not None:
                problems.append(Problem(file, at, f"{where}: {name!r} is required"))
            value = _default(key, file, at, join(where, name))
        else:
            value = _value(value, key, problems, where, name, file, at)
        out[name] = value
        out.key_lines[name] = at
    return out


def _line_of(mapping, key) -> int:
    return mapping.line_of(key) if isinstance(mapping, LineDict) else getattr(mapping, "line", 0)


def _default(key: Key, file, line, where):
    """The value of an absent key: a nested table's own defaults, or the Key's default."""
    if key.keys is not None and key.default is not None:
        return _placed(section(None, key.keys, [], where, key.noun), file, line)
    value = key.fresh_default()
    if isinstance(value, dict):
        value = _placed(LineDict(value), file, line)
    return value


def _placed(d: LineDict, file, line) -> LineDict:
    d.file, d.line, d.key_lines = file, line, {k: line for k in d}
    return d


def _value(value, key: Key, problems, where, name, file, line):
    """One given value: type, choices, check, then its nested table(s)."""
    inner = join(where, name)
    value = _coerce(value, key.type)
    if not _isinstance(value, key.type):
        problems.append(Problem(file, line, f"{where}: {name!r} must be "
                                            f"{_type_name(key.type)}, got {value!r}"))
        return _default(key, file, line, inner)
    if key.choices:
        items = value if isinstance(value, list) else [value]
        bad = [v for v in items if v not in key.choices]
        if bad:
            problems.append(Problem(file, line, f"{where}: {name!r} must be one of "
                                                f"{', '.join(map(str, key.choices))}, got "
                                                f"{bad[0]!r}"))
            if not isinstance(value, list):
                return _default(key, file, line, inner)
            lines = getattr(value, "item_lines", None) or [line] * len(value)
            kept = [(v, at) for v, at in zip(value, lines) if v in key.choices]
            value = _same_place([v for v, _ in kept], value, [at for _, at in kept])
    if key.check is not None:
        message = key.check(value)
        if message:
            problems.append(Problem(file, line, f"{where}: {name} {message}, got {value!r}"))
            return _default(key, file, line, inner)
    if key.keys is not None:
        return section(value, key.keys, problems, inner, key.noun)
    if key.each is not None:
        return entries(value, key, problems, inner)
    return value


def _same_place(items: list, like, lines: list) -> LineList:
    out = LineList(items)
    out.file, out.line, out.item_lines = getattr(like, "file", "?"), getattr(like, "line", 0), lines
    return out


def entries(value, key: Key, problems: list[Problem], where: str):
    """The entries of an ``each`` key: a list of checked mappings (type list) or
    {name: checked mapping} (type dict). A list entry with a ``name`` is called
    ``ITEM 'NAME'`` in messages, any other ``WHERE[INDEX]``."""
    if isinstance(value, dict):
        out = _placed(LineDict(), getattr(value, "file", "?"), getattr(value, "line", 0))
        for name, item in value.items():
            label = f"{key.item} {str(name)!r}" if key.item else join(where, name)
            if not isinstance(item, dict):
                if item is not None:
                    problems.append(Problem(getattr(value, "file", "?"), _line_of(value, name),
                                            f"{label} must be a mapping"))
                item = _blank(getattr(value, "file", "?"), _line_of(value, name))
            out[name] = section(item, key.each, problems, label)
            out.key_lines[name] = _line_of(value, name)
        return out
    out = _same_place([], value, [])
    lines = getattr(value, "item_lines", None) or [getattr(value, "line", 0)] * len(value)
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            problems.append(Problem(getattr(value, "file", "?"), lines[index],
                                    f"{where}[{index}] must be a mapping"))
            continue
        name = item.get("name")
        label = f"{key.item} {str(name)!r}" if key.item and name not in (None, "") else \
            f"{where}[{index}]"
        out.append(section(item, key.each, problems, label))
        out.item_lines.append(lines[index])
    return out


def fields_from(spec: dict[str, Key], frozen: bool = False):
    """Class decorator: a dataclass whose fields are the keys of ``spec`` with their
    defaults (required keys first, in table order), so a key's default is written once, in
    its table. The class body adds behaviour (properties, ``__post_init__``)."""

    def make(cls):
        ordered = [k for k, key in spec.items() if key.required] + \
            [k for k, key in spec.items() if not key.required]
        cls.__annotations__ = {k: Any for k in ordered}
        for k in ordered:
            key = spec[k]
            if key.required:
                continue
            setattr(cls, k, field(default_factory=key.default) if callable(key.default)
                    else field(default=key.default))
        return dataclass(frozen=frozen)(cls)

    return make
