"""Shared helper for tests that read the external test corpus (never copied into this repo).

The corpus lives in ``$TICKETGATE_CORPUS`` or ``<repo>/../shared/corpus``; tests that need it call
``require_corpus("zammad")`` which skips with a clear reason when it is absent.
"""
from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# Directories whose files are raw mails (robustness run); RT's mails have no extension.
MAIL_DIRS = ("zammad", "otrs", "sisimai", "flufl-bounce", "bounce-email-rb", "flanker",
             "ruby-mail", "rt", "cpython-email")
_MAIL_SUFFIXES = {".box", ".eml", ".txt", ".msg", ""}


def pass_rates(results) -> dict[str, tuple[int, int]]:
    """key -> (passed, applicable) from (key, ok) pairs; ok None = not applicable."""
    counts: dict[str, list[int]] = {}
    for key, ok in results:
        if ok is None:
            continue
        c = counts.setdefault(key, [0, 0])
        c[0] += ok
        c[1] += 1
    return {k: (a, b) for k, (a, b) in sorted(counts.items())}


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


def load_expected(sub: str) -> dict:
    """``<sub>/expected.yml`` of the corpus as a dict ({} when the corpus is absent)."""
    path = corpus_dir() / sub / "expected.yml"
    if not path.exists():
        return {}
    with open(path, "rb") as fh:
        return yaml.safe_load(fh) or {}


# --- known differences -----------------------------------------------------------------------
# THE table of deliberate (or accepted) differences between ticketgate and another project's
# expected results. A row applies by what the expected data or the mail itself shows (never by a
# file name), so the same rows work on any corpus of the same layout, including held-out mails.
# docs/conformance.md lists the same rows for admins.

@dataclass(frozen=True)
class Difference:
    source: str
    name: str
    reason: str
    applies: Callable[[object, bytes], bool]


def _tree_nodes(node):
    stack = [node] if isinstance(node, dict) else []
    while stack:
        n = stack.pop()
        yield n
        stack.extend(c for c in (n.get("parts") or []) if isinstance(c, dict))
        if isinstance(n.get("message"), dict):
            stack.append(n["message"])


def _ours(raw: bytes):
    from gateway.mail.parser import parse_bytes  # test helper; the parser is imported lazily
    return parse_bytes(raw)


def _ours_multipart_leaf(raw: bytes) -> bool:
    """A multipart/* part of ours has no parts: no delimiter line matched the boundary."""
    from gateway.mail.parser import _iter_parts  # see _ours
    return any(p.get_content_maintype() == "multipart" and not isinstance(p.get_payload(), list)
               for p in _iter_parts(_ours(raw).message))


def _ours_base64_tail(raw: bytes) -> bool:
    """Some base64 part of the mail has a number of base64 characters that is not a multiple of 4."""
    from gateway.mail.parser import _iter_parts  # see _ours
    for p in _iter_parts(_ours(raw).message):
        payload = p.get_payload()
        if str(p.get("Content-Transfer-Encoding", "")).strip().lower() == "base64" \
                and isinstance(payload, str):
            if len(re.sub(r"[^A-Za-z0-9+/]", "", payload)) % 4:
                return True
    return False


_PADDED_BOUNDARY = re.compile(rb'boundary="[^"\r\n]*[ \t]"', re.I)

KNOWN_DIFFERENCES: list[Difference] = [
    Difference(
        "mime4j", "mime4j-option",
        "mime4j was run with a non-default option (malformedHeaderStartsBody): the first invalid "
        "header line starts the body; we join such a line to the header instead",
        lambda exp, raw: (exp or {}).get("mime4j_config", "default") != "default"),
    Difference(
        "mime4j", "invalid-content-type",
        "a Content-Type without '/' (e.g. 'text'): mime4j reports it verbatim, we apply the "
        "RFC 2045 default (text/plain, message/rfc822 in a digest)",
        lambda exp, raw: any(n.get("content_type") and "/" not in n["content_type"]
                             for n in _tree_nodes((exp or {}).get("tree")))),
    Difference(
        "mime4j", "empty-part",
        "two delimiter lines in a row: mime4j counts an empty header-less part between them, "
        "the stdlib parser none (nothing is lost)",
        lambda exp, raw: any(n.get("entity") == "body-part" and n.get("fields") == []
                             and (n.get("decoded") or {}).get("bytes") == 0
                             for n in _tree_nodes((exp or {}).get("tree")))),
    Difference(
        "mime4j", "no-delimiter",
        "no line of the mail is a delimiter of the declared boundary (missing, or followed by "
        "text on the same line): mime4j builds an empty or partial multipart and drops the text; "
        "we keep the whole body as one text part, so it reaches the ticket",
        lambda exp, raw: _ours_multipart_leaf(raw)),
    Difference(
        "mime4j", "padded-boundary",
        "a boundary parameter ending in white space: the stdlib ignores trailing white space on "
        "delimiter lines (RFC 2046 transport padding) and so also accepts a line without it",
        lambda exp, raw: bool(_PADDED_BOUNDARY.search(raw))),
    Difference(
        "mime4j", "base64-tail",
        "base64 whose last group is incomplete: mime4j drops the incomplete group, we decode "
        "its bytes as well (noted as a defect)",
        lambda exp, raw: _ours_base64_tail(raw)),
]


KNOWN_DIFFERENCES += [
    Difference(
        "enmime", "enmime-option",
        "the check runs enmime with a non-default option (parser_options); ticketgate has one "
        "behaviour, the default one",
        lambda exp, raw: bool(exp["check"].get("parser_options"))),
    Difference(
        "enmime", "never-refuse",
        "enmime refuses the input (parse error, header decoding error); ticketgate never refuses "
        "a mail: whatever arrives becomes an article, with defects noted",
        lambda exp, raw: exp["key"] in ("parse_error_contains", "header_decode_error")
        or (exp["key"] == "parse_ok" and not exp["check"].get("parse_ok"))),
    Difference(
        "enmime", "html-to-text-style",
        "text derived from HTML: enmime writes emphasis as *markdown*; our HTML-to-text keeps the "
        "words, link targets and line structure, without markup",
        lambda exp, raw: exp["key"].startswith("text")
        and "Plain Text from HTML" in (exp["check"].get("errors") or [])
        and any("*" in str(v) for v in ([exp["check"].get(exp["key"])] or []))),
    Difference(
        "enmime", "third-part-class",
        "enmime has a third class 'other parts' (no Content-Disposition); we have two: a part "
        "with a Content-ID and no disposition is an inline part (it is referenced by the HTML)",
        lambda exp, raw: exp["key"] == "inlines_count"
        and bool(exp["check"].get("other_parts_count"))),
    Difference(
        "enmime", "recursive-encoded-words",
        "encoded words whose decoded text is again encoded words: enmime decodes recursively, we "
        "decode one level as RFC 2047 says (the inner '=?...?=' text is shown as sent)",
        lambda exp, raw: "recursive" in str(exp["check"].get("test", "")).lower()),
    Difference(
        "enmime", "unterminated-close-delimiter",
        "the close delimiter is followed by text on the same line ('--b-->'): not a delimiter "
        "under RFC 2046 for the stdlib parser, so what follows stays in the last part (kept, "
        "not lost) instead of becoming the epilogue",
        lambda exp, raw: exp["key"] == "root_epilogue" and any(
            "CloseBoundaryNotFound" in d for d in _ours(raw).defects)),
]

KNOWN_DIFFERENCES += [
    Difference(
        "mimekit", "text-after-html",
        "multipart/mixed with text/html first and a text/plain part after it: MimeKit has no "
        "text body then; we take the text/plain part as the text body (the ticket shows text)",
        lambda exp, raw: exp["key"] == "text_body" and exp["entry"].get("text_body") is None
        and exp["entry"].get("html_body") is not None),
]


def _raw_header_lines(raw: bytes, name: bytes) -> list[bytes]:
    head = raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    return [ln for ln in head.split(b"\n") if ln.lower().startswith(name.lower() + b":")]


def _from_word_with_comma(raw: bytes) -> bool:
    from gateway.mail.text import decode_words  # see _ours
    for line in _raw_header_lines(raw, b"From"):
        words = re.findall(r"=\?[^?]+\?[QqBb]\?[^?]*\?=", line.decode("latin-1"))
        if any("," in decode_words(w) for w in words):
            return True
    return False


# Zammad: ``exp`` is {"field": <zammad field>, "expected": <the mail's .yml>}.
# OTRS: ``exp`` is {"check": <check name>, "expected": <expected value>}.
KNOWN_DIFFERENCES += [
    Difference(
        "zammad", "uuencode-extracted",
        "a uuencoded file in the text body: we extract it as an attachment, Zammad leaves the "
        "uuencoded text in the body",
        lambda exp, raw: exp["field"] in ("body", "attachment_names")
        and bool(re.search(rb"(?m)^begin [0-7]{3,4} \S", raw))),
    Difference(
        "zammad", "quoted-address",
        "From '\"x@y\" <x@y>': Zammad keeps the quotes in from_email, we give the address",
        lambda exp, raw: exp["field"] == "from_email"
        and '"' in str(exp["expected"].get("from_email") or "")),
    Difference(
        "zammad", "raw-8bit-name",
        "raw 8-bit bytes in the From display name: we decode them with the charset the mail "
        "uses (GB2312 gives the right name), Zammad yields latin-2 mojibake",
        lambda exp, raw: exp["field"] == "from_display_name"
        and any(not ln.isascii() for ln in _raw_header_lines(raw, b"From"))),
    Difference(
        "zammad", "described-part-name",
        "an unnamed text/rfc822-headers part: we name it from its Content-Description, Zammad "
        "calls it 'file'",
        lambda exp, raw: exp["field"] == "attachment_names"
        and bool(re.search(rb"(?i)text/rfc822-headers", raw))
        and bool(re.search(rb"(?im)^content-description:", raw))),
    Difference(
        "zammad", "comma-in-encoded-word",
        "an encoded word in From whose text contains ',': we decode the whole name, Zammad "
        "splits the address list inside the encoded word",
        lambda exp, raw: exp["field"] == "from_display_name" and _from_word_with_comma(raw)),
    Difference(
        "otrs", "8bit-header-byte",
        "a raw 8-bit byte in a header that is not UTF-8: we decode it with the cp1252 fallback "
        "('®'), OTRS gives U+FFFD",
        lambda exp, raw: exp["check"].startswith("header[")
        and "\ufffd" in str(exp["expected"])),
    Difference(
        "otrs", "single-part-binary",
        "a single-part non-text mail: OTRS takes the file as the body, we keep an empty body "
        "and list the file as attachment",
        lambda exp, raw: exp["check"].endswith(".exists") and any(
            re.match(rb"(?i)content-type:\s*(?:application|image|audio|video)/", ln)
            for ln in _raw_header_lines(raw, b"Content-Type"))),
]


def known_difference(source: str, expected, raw: bytes = b"") -> str | None:
    """Reason of the first KNOWN_DIFFERENCES row of ``source`` that applies, else None."""
    for row in KNOWN_DIFFERENCES:
        if row.source == source and row.applies(expected, raw):
            return f"{row.name}: {row.reason}"
    return None
