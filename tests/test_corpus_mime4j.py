"""Conformance of gateway.mail.parser with Apache James mime4j's expected MIME trees.

For every mail listed in ``mime4j/expected.yml`` the entity tree we build (message / body
part, content type, depth first) and the transfer-decoded body of every leaf (sha256) are
compared with mime4j's. Text leaves match after normalising line ends (mime4j turns a QP hard
line break into CRLF even in an LF-only file) and one final line break (before the delimiter
RFC 2046 gives it to the delimiter; mime4j keeps it in some recoveries). Where mime4j's answer is a recovery choice we
deliberately do not share, the mail is covered by a row of ``corpus.KNOWN_DIFFERENCES`` (keyed
by what the expected data says about the mail, never by its file name). Pass rates are
printed by ``test_mime4j_pass_rates`` (``-s``) and listed in docs/conformance.md.
"""
from __future__ import annotations

import hashlib

import pytest

from tests.corpus import corpus_dir, known_difference, load_expected, require_corpus
from gateway.mail.parser import _content_type, parse_bytes
from gateway.mail.payload import _payload_bytes

SOURCE = "mime4j"


def _expected_entities(node: dict, depth: int = 0, parent: str = "") -> list[tuple]:
    """Depth-first (depth, kind, content type, decoded sha256 of a leaf, is-text) of mime4j."""
    ctype = node.get("content_type")
    if not ctype:
        ctype = "message/rfc822" if parent == "multipart/digest" else "text/plain"
    body = node.get("body")
    out = []
    if body == "multipart":
        out.append((depth, "multipart", ctype, None, False))
        for child in node.get("parts") or []:
            out.extend(_expected_entities(child, depth + 1, ctype))
    elif body == "message":
        out.append((depth, "message", ctype, None, False))
        out.extend(_expected_entities(node.get("message") or {}, depth + 1, ctype))
    else:
        dec = node.get("decoded") or {}
        out.append((depth, "leaf", ctype, dec.get("sha256"), body == "text"))
    return out


def _our_entities(part, depth: int = 0) -> list[tuple]:
    """The same list for our (stdlib compat32) tree; decoded leaves as bytes."""
    ctype = _content_type(part)[0]
    payload = part.get_payload()
    if ctype.startswith("multipart/") and isinstance(payload, list):
        out = [(depth, "multipart", ctype, None)]
        for child in payload:
            out.extend(_our_entities(child, depth + 1))
        return out
    if ctype.startswith("message/") and isinstance(payload, list) and payload:
        out = [(depth, "message", ctype, None)]
        out.extend(_our_entities(payload[0], depth + 1))
        return out
    return [(depth, "leaf", ctype, _payload_bytes(part, []))]


def _lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def compare(raw: bytes, exp: dict) -> dict[str, tuple[bool, str]]:
    """check -> (ok, detail) for one mail: 'tree' (shape and types) and 'leaves' (bodies)."""
    want = _expected_entities(exp.get("tree") or {})
    top = parse_bytes(raw).message
    # The top-level message is an entity of its own in mime4j's tree and in ours.
    got = [(0, "message", "", None)] + [(d + 1, k, c, b) for d, k, c, b in _our_entities(top)]
    want = [(0, "message", "", None, False)] + [(d + 1, k, c, s, t) for d, k, c, s, t in want]
    shape_w = [(d, k, c) for d, k, c, _s, _t in want]
    shape_g = [(d, k, c) for d, k, c, _b in got]
    res = {"tree": (shape_w == shape_g, f"ours {shape_g} != mime4j {shape_w}")}
    bad = []
    leaves_w = [(s, t) for _d, k, _c, s, t in want if k == "leaf"]
    leaves_g = [b for _d, k, _c, b in got if k == "leaf"]
    if len(leaves_w) != len(leaves_g):
        bad.append(f"{len(leaves_g)} leaves, mime4j {len(leaves_w)}")
    for i, ((sha, is_text), data) in enumerate(zip(leaves_w, leaves_g)):
        if _sha(data) == sha:
            continue
        if is_text and any(_sha(v + end) == sha for v in (data, _lf(data),
                                                           _lf(data).replace(b"\n", b"\r\n"))
                           for end in (b"", b"\n", b"\r\n")):
            continue
        bad.append(f"leaf {i + 1}: {len(data)} bytes {data[:60]!r}")
    res["leaves"] = (not bad, "; ".join(bad))
    return res


def _cases():
    exp = load_expected(SOURCE)
    if not exp:
        return [pytest.param(None, None, marks=pytest.mark.skip(
            reason=f"mime4j corpus not available under {corpus_dir()}"))]
    return [pytest.param(rel, entry, id=rel.rsplit("/", 1)[-1]) for rel, entry in exp.items()
            if isinstance(entry, dict) and entry.get("tree")]


@pytest.mark.parametrize(("rel", "exp"), _cases())
def test_mime4j_mail(rel, exp):
    raw = (corpus_dir() / SOURCE / rel).read_bytes()
    res = compare(raw, exp)
    failed = {k: d for k, (ok, d) in res.items() if not ok}
    if failed:
        row = known_difference(SOURCE, exp, raw)
        if row:
            pytest.xfail(f"documented difference: {row}")
    assert not failed, failed


def mime4j_rates() -> dict[str, tuple[int, int]]:
    counts = {"tree": [0, 0], "leaves": [0, 0], "mail": [0, 0]}
    for rel, exp in load_expected(SOURCE).items():
        if not isinstance(exp, dict) or not exp.get("tree"):
            continue
        res = compare((corpus_dir() / SOURCE / rel).read_bytes(), exp)
        for k, (ok, _d) in res.items():
            counts[k][0] += ok
            counts[k][1] += 1
        counts["mail"][0] += all(ok for ok, _d in res.values())
        counts["mail"][1] += 1
    return {k: (a, b) for k, (a, b) in counts.items()}


def test_mime4j_pass_rates(record_property):
    require_corpus(SOURCE)
    for k, (ok, n) in mime4j_rates().items():
        print(f"mime4j {k:8} {ok}/{n} = {ok / n:.0%}")
        record_property(f"mime4j_{k}", f"{ok}/{n}")
