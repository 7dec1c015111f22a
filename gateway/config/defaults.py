"""``check-config --defaults``: every key of every file of conf/ with its default and doc.

The output is a YAML stream, one document per file (``# ticketgate.yaml``, ``---``,
``# queues.yaml``, ...), nested as the files are written. A key with a default shows it; an
empty value means "the default" when loaded back, so the ticketgate.yaml document loads as
if the file were empty. Lists and mappings of named entries (listeners, queues, calendars)
show one example entry commented out: delete the ``# `` after the indentation to use it.
"""
from __future__ import annotations

from collections.abc import Sequence

import yaml

from gateway.config.core_keys import CORE_KEYS
from gateway.config.loader import main_keys
from gateway.config.schema import Key
from gateway.config.section import ConfigSection

COLUMN = 38     # where the "# doc" comments start


def render_defaults(sections: Sequence[ConfigSection] = ()) -> str:
    """The core's keys and those of ``sections``, per file, in the order they appear."""
    files: dict[str, dict | Key] = {}
    for file, spec in (*CORE_KEYS, *(table for part in sections for table in part.keys)):
        if isinstance(spec, dict) and isinstance(files.get(file), dict):
            files[file] = {**files[file], **spec}
        else:
            files.setdefault(file, spec)
    files["ticketgate.yaml"] = main_keys(sections)
    blocks = []
    for file, spec in files.items():
        lines = [f"# {file}"]
        if isinstance(spec, Key):
            lines.append(f"# {spec.doc}")
            lines += _commented(_example(spec, 0), 0)
        else:
            lines += _table(spec, 0, example=False)
        blocks.append("\n".join(lines))
    return "\n---\n".join(blocks) + "\n"


def _table(spec: dict[str, Key], indent: int, example: bool) -> list[str]:
    lines: list[str] = []
    for name, key in spec.items():
        lines += _key(name, key, indent, example)
    return lines


def _key(name, key: Key, indent: int, example: bool) -> list[str]:
    pad = " " * indent
    if key.keys is not None:
        return [_line(f"{pad}{name}:", _doc(key))] + _table(key.keys, indent + 2, example)
    if key.each is not None:
        return [_line(f"{pad}{name}:", _doc(key))] + \
            _commented(_example(key, indent + 2), indent + 2)
    value = key.fresh_default()
    if key.example is not None and (key.required or (example and value is None)):
        value = key.example
    return [_line(f"{pad}{name}: {_scalar(value)}".rstrip(), _doc(key))]


def _example(key: Key, indent: int) -> list[str]:
    """One entry of an ``each`` key, not yet commented out."""
    if key.type is list:
        lines = _table(key.each, indent + 2, example=True)
        if lines:
            lines[0] = " " * indent + "- " + lines[0][indent + 2:]
        return lines
    name = key.example or "NAME"
    what = key.doc.split(" -> ")[0] if " -> " in key.doc else "name"
    return [_line(f"{' ' * indent}{_scalar(name)}:", what)] + \
        _table(key.each, indent + 2, example=True)


def _commented(lines: list[str], indent: int) -> list[str]:
    return [line[:indent] + "# " + line[indent:] for line in lines]


def _doc(key: Key) -> str:
    doc = key.doc
    if key.choices and not all(str(c) in doc for c in key.choices):
        doc += f" ({' | '.join(map(str, key.choices))})"
    return f"required; {doc}" if key.required else doc


def _line(text: str, doc: str) -> str:
    return f"{text.ljust(COLUMN)}  # {doc}" if doc else text


def _scalar(value) -> str:
    if value is None:
        return ""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**6)
    return text.removesuffix("\n...\n").strip()
