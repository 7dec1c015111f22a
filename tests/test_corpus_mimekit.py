"""Conformance of gateway.mail.parser with MimeKit's test expectations.

``mimekit/expected.yml`` gives, per mail, the text and HTML body a client shows, the decoded
subject, the MIME tree, the fields of delivery-status / MDN / ARF parts and the multipart/related
root; for mboxes the byte range of every message and its tree. Each key is compared with our
ParsedMail (for mboxes: each message cut out by its byte range and parsed alone, as a delivery
would bring it; ticketgate has no mbox reader, so splitting itself is not compared). Keys we
deliberately answer differently are rows of ``corpus.KNOWN_DIFFERENCES``. Pass rates:
``test_mimekit_pass_rates`` (``-s``) and docs/conformance.md.
"""
from __future__ import annotations

import email.utils
import re

import pytest

from tests.corpus import corpus_dir, known_difference, load_expected, pass_rates, require_corpus
from gateway.mail import ParsedMail
from gateway.mail.parser import _content_type, _iter_parts, parse_bytes
from gateway.mail.text import decode_header_value

SOURCE = "mimekit"
_SKIP_KEYS = {"upstream", "note", "format", "parser_options", "loaded_as", "expected"}


def _lf(text):
    return None if text is None else str(text).replace("\r\n", "\n")


def _children(pm: ParsedMail) -> list:
    payload = pm.message.get_payload()
    return payload if isinstance(payload, list) else []


def _fields(part) -> dict[str, str]:
    """Fields of one status group / MDN / ARF block, names lower-cased, first value kept."""
    out: dict[str, str] = {}
    for k, v in part.raw_items():
        out.setdefault(k.lower(), re.sub(r"\r?\n", "", str(v)).strip())
    return out


def _groups(part) -> list:
    payload = part.get_payload()
    if isinstance(payload, list):
        return payload
    return []


def _tree(part, depth: int = 0) -> list[list]:
    ctype = _content_type(part)[0]
    out = [[depth, ctype]]
    payload = part.get_payload()
    if isinstance(payload, list) and (ctype.startswith("multipart/") or ctype == "message/rfc822"):
        for child in payload:
            out.extend(_tree(child, depth + 1))
    return out


def _same_fields(got: dict[str, str], want: dict) -> bool:
    norm = lambda v: re.sub(r"\s+", " ", str(v)).strip()  # noqa: E731
    return all(norm(got.get(k.lower(), "")) == norm(v) for k, v in want.items())


def _addresses(value: str) -> list[str]:
    return [a.lower() for _n, a in email.utils.getaddresses([value or ""]) if a]


def _entity_tree(node: dict) -> list[str]:
    """Content types of an mbox message's entity tree, depth first."""
    out = [str(node.get("content_type") or "").lower()]
    for child in node.get("parts") or []:
        out.extend(_entity_tree(child))
    if node.get("message"):
        out.extend(_entity_tree((node["message"] or {}).get("body") or {}))
    return out


def evaluate(pm: ParsedMail, key: str, want) -> bool | None:
    """True/False for one expected key of a mail; None when it has no meaning for ticketgate."""
    kids = _children(pm)
    if key == "text_body":
        got = pm.body if pm.content_type == "text/plain" else None
        return (got is None and want is None) or (
            got is not None and want is not None and _lf(got).rstrip("\n") == _lf(want).rstrip("\n"))
    if key == "text_body_flowed":
        return _lf(pm.body).rstrip("\n") == _lf(want).rstrip("\n")
    if key == "html_body":
        got = pm.body_html
        return (got is None and want is None) or (
            got is not None and want is not None and _lf(got).rstrip("\n") == _lf(want).rstrip("\n"))
    if key == "subject":
        return pm.subject == want
    if key == "body_content_type":
        return _content_type(pm.message)[0] == want
    if key == "body_content_type_name":
        return _content_type(pm.message)[1].get("name") == want
    if key == "report_type":
        return _content_type(pm.message)[1].get("report-type", "").lower() == want
    if key == "parts":
        return [_content_type(p)[0] for p in kids] == list(want)
    if key == "parts_asserted":
        return all(int(i) < len(kids) and _content_type(kids[int(i)])[0] == t
                   for i, t in want.items())
    if key.startswith("part_") and key.endswith("_headers"):
        i = int(key.split("_")[1])
        return i < len(kids) and all(
            decode_header_value(str(kids[i].get(h, ""))) == str(v) for h, v in want.items())
    if key == "tree":
        return _tree(pm.message) == [list(x) for x in want]
    if key == "delivery_status":
        i = want["part_index"]
        if i >= len(kids):
            return False
        groups = _groups(kids[i])
        return len(groups) == want["group_count"] and all(
            _same_fields(_fields(g), w) for g, w in zip(groups, want.get("groups") or []))
    if key in ("disposition_notification", "feedback_report"):
        i = want["part_index"]
        if i >= len(kids):
            return False
        blocks = _groups(kids[i])
        fields = _fields(blocks[0]) if blocks else {}
        names = [k.lower() for k, _v in blocks[0].raw_items()] if blocks else []
        return len(names) == want["field_count"] and _same_fields(fields, want.get("fields") or {})
    if key == "related_root_index":
        related = [p for p in _iter_parts(pm.message)
                   if _content_type(p)[0] == "multipart/related"]
        if not related or pm.body_html is None:
            return False
        children = related[0].get_payload()
        for n, child in enumerate(children):
            if _content_type(child)[0] == "text/html":
                data = child.get_payload(decode=True) or b""
                text = _lf(data.decode("utf-8", "replace")).strip()
                if text[:200] == _lf(pm.body_html).strip()[:200]:
                    return n == want
        return False
    return None


def mbox_evaluate(data: bytes, msg: dict) -> dict[str, bool]:
    """Checks of one mbox message cut out by its byte range."""
    begin, _headers_end, end = msg["message_offsets"]
    pm = parse_bytes(data[begin:end])
    res = {}
    if "subject" in msg:
        res["subject"] = pm.subject == str(msg["subject"])
    for h, attr in (("from", "from_"), ("to", "to")):
        if h in msg:
            res[h] = [a.email for a in getattr(pm, attr)] == _addresses(str(msg[h]))
    if msg.get("body"):
        ours = [t for _d, t in _tree(pm.message)]
        res["tree"] = ours == _entity_tree(msg["body"])
    return res


def results(rel: str, entry: dict):
    """(key, ok) for every comparable expectation of one file; ok None = not applicable."""
    raw = (corpus_dir() / SOURCE / rel).read_bytes()
    if entry.get("format") == "mbox":
        for msg in entry.get("messages") or []:
            for key, ok in mbox_evaluate(raw, msg).items():
                yield f"mbox message {key}", ok, raw
        return
    pm = parse_bytes(raw)
    for key, want in entry.items():
        if key in _SKIP_KEYS:
            continue
        yield key, evaluate(pm, key, want), raw


def _cases():
    exp = load_expected(SOURCE)
    if not exp:
        return [pytest.param(None, None, marks=pytest.mark.skip(
            reason=f"mimekit corpus not available under {corpus_dir()}"))]
    return [pytest.param(rel, entry, id=rel.rsplit("/", 1)[-1]) for rel, entry in exp.items()
            if isinstance(entry, dict)]


@pytest.mark.parametrize(("rel", "entry"), _cases())
def test_mimekit_mail(rel, entry):
    failed, known = [], []
    for key, ok, raw in results(rel, entry):
        if ok is None or ok:
            continue
        row = known_difference(SOURCE, {"entry": entry, "key": key}, raw)
        (known if row else failed).append(f"{key}" + (f" ({row})" if row else ""))
    assert not failed, failed
    if known:
        pytest.xfail("documented differences: " + "; ".join(sorted(set(known))))


def mimekit_rates() -> dict[str, tuple[int, int]]:
    return pass_rates((key, ok) for rel, entry in load_expected(SOURCE).items()
                      if isinstance(entry, dict) for key, ok, _raw in results(rel, entry))


def test_mimekit_pass_rates(record_property):
    require_corpus(SOURCE)
    rates = mimekit_rates()
    for k, (ok, n) in rates.items():
        print(f"mimekit {k:26} {ok}/{n}")
        record_property(f"mimekit_{k}", f"{ok}/{n}")
    print(f"mimekit {'all':26} {sum(a for a, _ in rates.values())}/"
          f"{sum(b for _, b in rates.values())}")
