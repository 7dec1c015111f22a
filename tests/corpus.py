"""Shared helper for tests that read the external test corpus (never copied into this repo).

The corpus lives in ``$TICKETGATE_CORPUS`` or ``<repo>/../shared/corpus``; tests that need it call
``require_corpus("zammad")`` which skips with a clear reason when it is absent.
"""
from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# Directories whose files are raw mails (robustness run); RT's mails have no extension.
MAIL_DIRS = ("zammad", "otrs", "sisimai", "flufl-bounce", "bounce-email-rb", "flanker",
             "ruby-mail", "rt", "cpython-email")
_MAIL_SUFFIXES = {".box", ".eml", ".txt", ".msg", ""}


def corpus_dir() -> Path:
    """Root of the shared corpus (may not exist)."""
    env = os.environ.get("TICKETGATE_CORPUS")
    return Path(env) if env else (REPO.parent / "shared" / "corpus")


def require_corpus(sub: str = "") -> Path:
    """Path of corpus subdirectory ``sub``; pytest.skip when it is not available."""
    path = corpus_dir() / sub if sub else corpus_dir()
    if not path.exists():
        pytest.skip(f"test corpus not available: {path} (set $TICKETGATE_CORPUS or provide "
                    f"<repo>/../shared/corpus)")
    return path


def mail_files(sub: str) -> list[Path]:
    """Files under corpus subdirectory ``sub`` that look like raw mails (sorted)."""
    root = corpus_dir() / sub
    if not root.exists():
        return []
    out = []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name.lower().startswith("readme") or p.name.startswith("."):
            continue
        if p.suffix.lower() not in _MAIL_SUFFIXES:
            continue
        if p.suffix == "" and p.name == "dir":  # RT: mbox-like concatenation of msg1..7
            out.append(p)
            continue
        out.append(p)
    return out


class RubyYamlLoader(yaml.SafeLoader):
    """SafeLoader that maps Ruby/unknown local tags to plain values; ``!binary`` is base64."""


def _construct_unknown(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


def _construct_binary(loader: yaml.SafeLoader, node: yaml.Node) -> bytes:
    value = loader.construct_scalar(node)
    return base64.b64decode("".join(str(value).split()))


RubyYamlLoader.add_constructor("!binary", _construct_binary)
RubyYamlLoader.add_multi_constructor("!", _construct_unknown)
RubyYamlLoader.add_multi_constructor("tag:ruby.yaml.org", _construct_unknown)


def load_ruby_yaml(path: Path):
    with open(path, "rb") as fh:
        return yaml.load(fh, Loader=RubyYamlLoader)  # noqa: S506 - SafeLoader subclass


def zammad_cases() -> list[tuple[str, Path, Path]]:
    """(stem, .box, .yml) for every Zammad mail with an expected result."""
    root = corpus_dir() / "zammad" / "test" / "data" / "mail"
    if not root.exists():
        return []
    return [(b.stem, b, b.with_suffix(".yml")) for b in sorted(root.glob("mail*.box"))
            if b.with_suffix(".yml").exists()]
