"""Load YAML keeping line numbers, so every config error can name file and line."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

# Hard limits, checked before anything is built, so a hostile or broken file is a Problem with
# file:line instead of a traceback, an out-of-memory or a hung reload:
MAX_FILE_BYTES = 1024 * 1024       # no real configuration file comes near this
MAX_DEPTH = 64                     # nesting of mappings/sequences (the composer recurses)
MAX_NODES = 100_000                # values after expanding aliases ("billion laughs")
MAX_ALIASES = 1_000                # *alias uses per file


class LineDict(dict):
    """A mapping that remembers the file, its own line and each key's line (1-based)."""

    file: str = "?"
    line: int = 0
    key_lines: dict

    def line_of(self, key) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list):
    file: str = "?"
    line: int = 0
    item_lines: list


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class ConfigError(Exception):
    """One or more problems in the configuration; str() lists all of them."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# libyaml (C) when PyYAML has it: the pure-Python parser needs about 10 s per 100,000 values.
_FAST = getattr(yaml, "CSafeLoader", None) if yaml.__with_libyaml__ else None


class _LimitedLoader(yaml.SafeLoader):
    """SafeLoader whose scanner refuses flow collections ([ {) nested beyond MAX_DEPTH: it
    looks ahead over every open one, which is quadratic in their depth."""

    def fetch_flow_collection_start(self, token_class):
        if self.flow_level >= MAX_DEPTH:
            raise yaml.scanner.ScannerError(
                None, None, f"nested deeper than {MAX_DEPTH} levels", self.get_mark())
        super().fetch_flow_collection_start(token_class)


def _loader_for(filename: str):
    class Loader(_FAST or _LimitedLoader):  # depth already checked by _check_shape
        pass

    def mapping(loader, node):
        loader.flatten_mapping(node)
        out = LineDict()
        out.file, out.line, out.key_lines = filename, node.start_mark.line + 1, {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark)
            if key in out:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            out[key] = loader.construct_object(value_node, deep=True)
            out.key_lines[key] = key_node.start_mark.line + 1
        return out

    def sequence(loader, node):
        out = LineList(loader.construct_object(child, deep=True) for child in node.value)
        out.file, out.line = filename, node.start_mark.line + 1
        out.item_lines = [child.start_mark.line + 1 for child in node.value]
        return out

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, sequence)
    return Loader


def _check_shape(text: str, name: str) -> None:
    """Walk the parser's events (no recursion, nothing built) and refuse a document that is too
    deep or whose aliases would expand beyond MAX_NODES values."""
    stack: list[list] = [[0, None]]       # [expanded values so far, anchor] per open node
    sizes: dict[str, int] = {}            # anchor -> expanded values of its node
    aliases = 0

    def too_big(mark, what):
        raise ConfigError([Problem(name, mark.line + 1, what)])

    def add(count, mark):
        stack[-1][0] += count
        if sum(entry[0] for entry in stack) > MAX_NODES:
            too_big(mark, f"YAML too large: more than {MAX_NODES} values once aliases are "
                          f"expanded (an alias bomb?)")

    for event in yaml.parse(text, Loader=_FAST or _LimitedLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if len(stack) > MAX_DEPTH:
                too_big(event.start_mark, f"YAML nested deeper than {MAX_DEPTH} levels")
            stack.append([1, event.anchor])
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            count, anchor = stack.pop()
            if anchor is not None:
                sizes[anchor] = count
            add(count, event.start_mark)
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                sizes[event.anchor] = 1
            add(1, event.start_mark)
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                too_big(event.start_mark, f"YAML uses more than {MAX_ALIASES} aliases")
            # an unknown anchor is left to the loader, which reports it
            add(sizes.get(event.anchor, 1), event.start_mark)


def load_yaml(path: Path, display: str | None = None):
    """Parse one YAML file; syntax errors become a ConfigError naming file and line."""
    name = display or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError([Problem(name, 0, f"file too large: {size} bytes (at most "
                                                f"{MAX_FILE_BYTES})")])
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(name, 0, f"cannot read: {exc}")]) from None
    try:
        _check_shape(text, name)
        data = yaml.load(text, Loader=_loader_for(name))  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else 0
        what = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem(name, line, f"YAML syntax error: {what}")]) from None
    if data is None:
        data = LineDict()
        data.file, data.line, data.key_lines = name, 1, {}
    return data
