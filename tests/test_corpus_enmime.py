"""Conformance of gateway.mail.parser with the enmime (Go) test expectations.

Every check of ``enmime/expected.yml`` is split into its assertions (text/HTML body, part
counts, file names, Content-IDs, decoded bytes, decoded headers, epilogue, warnings) and each
one is compared with our ParsedMail. Mapping: enmime's attachments / inlines / other parts are
our attachments with disposition "attachment" / "inline" (a part with a Content-ID and no
disposition is "inline" for us); enmime's warnings map to our defects where a defect of ours
means the same ("Missing Content-Type" has none: no Content-Type means text/plain, RFC 2045).
Checks run with non-default enmime options, and assertions we deliberately do
not share, are covered by ``corpus.KNOWN_DIFFERENCES`` (keyed by the expected data). Pass
rates: ``test_enmime_pass_rates`` (``-s``) and docs/conformance.md.
"""
from __future__ import annotations

import hashlib

import pytest

from tests.corpus import corpus_dir, known_difference, load_expected, pass_rates, require_corpus
from gateway.mail import ParsedMail
from gateway.mail.parser import parse_bytes

SOURCE = "enmime"

# enmime warning name -> does our ParsedMail show the same condition?
_WARNINGS = {
    "Plain Text from HTML": lambda pm: pm.content_type == "text/html",
    "Malformed Base64": lambda pm: any("base64" in d for d in pm.defects),
    "Character Set Conversion": lambda pm: any("charset" in d for d in pm.defects),
}
_PART_LISTS = ("attachments", "inlines", "other_parts")


def _lf(text: str) -> str:
    return (text or "").replace("\r\n", "\n")


def _part_ok(att, want: dict) -> bool:
    data = att.data
    checks = {
        "filename": lambda v: att.filename == v,
        "content_id": lambda v: (att.content_id or "") == v,
        "content_prefix_hex": lambda v: data.startswith(bytes.fromhex(v)),
        "content_prefix": lambda v: data.startswith(str(v).encode()),
        "content_contains": lambda v: str(v).encode() in data,
        "content_bytes": lambda v: len(data) == v,
        "content_sha256": lambda v: hashlib.sha256(data).hexdigest() == v,
        "content_hex": lambda v: data.hex() == v,
    }
    return all(checks[k](v) for k, v in want.items() if k in checks)


def _ours(pm: ParsedMail, kind: str) -> list:
    if kind == "attachments":
        return [a for a in pm.attachments if a.disposition == "attachment"]
    if kind == "inlines":
        return [a for a in pm.attachments if a.disposition == "inline"]
    return list(pm.attachments)  # other parts: any of ours (we have no third class)


def assertions(check: dict) -> list[tuple[str, object]]:
    """(key, expected value) of one check, without its bookkeeping keys."""
    return [(k, v) for k, v in check.items() if k not in ("test", "note", "parser_options")]


def evaluate(pm: ParsedMail, key: str, want, check: dict) -> bool | None:
    """True/False for one assertion; None when it has no meaning for ticketgate."""
    html = pm.body_html or ""
    if key == "text":
        # enmime joins several text parts with "\n--\n", we with a blank line.
        want = _lf(want).replace("\n\n--\n", "\n\n").replace("\n--\n", "\n\n")
        return _lf(pm.body).rstrip("\n") == want.rstrip("\n")
    if key == "text_trimmed":
        return pm.body.strip() == str(want).strip()
    if key == "text_contains":
        return all(_lf(w) in _lf(pm.body) for w in ([want] if isinstance(want, str) else want))
    if key == "html":
        return _lf(html) == _lf(want)
    if key == "html_contains":
        return all(_lf(w) in _lf(html) for w in ([want] if isinstance(want, str) else want))
    if key == "html_not_contains":
        return all(w not in html for w in ([want] if isinstance(want, str) else want))
    if key.endswith("_count") and key[:-6] in _PART_LISTS:
        kind = key[:-6]
        if kind == "other_parts":
            return None  # covered by the part list itself; our classes are two (see module doc)
        return len(_ours(pm, kind)) == want
    if key in _PART_LISTS:
        ours = _ours(pm, key)
        return all(any(_part_ok(a, w) for a in ours) for w in want)
    if key == "errors":
        mapped = [n for n in want if n in _WARNINGS]
        absent = [n for n in _WARNINGS if n not in want]
        return all(_WARNINGS[n](pm) for n in mapped) and \
            not any(_WARNINGS[n](pm) for n in absent if n == "Plain Text from HTML")
    if key == "errors_include":
        names = [e["name"] for e in want if e["name"] in _WARNINGS]
        if not names:
            return None
        return all(_WARNINGS[n](pm) for n in names)
    if key == "parse_ok":
        return bool(want)  # we parse every input; parse_ok false is a documented difference
    if key in ("parse_error_contains", "header_decode_error"):
        return False  # we never refuse a mail (documented difference)
    if key in ("header", "header_contains"):
        return all((pm.header(h) or "") == v if key == "header" else v in (pm.header(h) or "")
                   for h, v in want.items())
    if key == "root_header_names":
        return {k.lower() for k, _v in pm.headers} == {w.lower() for w in want}
    if key == "root_header_values_within":
        return all(all(v in str(w) for v in pm.header_all(h)) and pm.header_all(h)
                   for h, w in want.items())
    if key == "root_header_min":
        return len({k.lower() for k, _v in pm.headers}) >= want
    if key == "root_header_count":
        return len({k.lower() for k, _v in pm.headers}) == want
    if key == "root_epilogue":
        return _lf(pm.message.epilogue or "") == _lf(want)
    if key == "root_content_nonempty":
        return bool(pm.body.strip() or any(a.data for a in pm.attachments)) == bool(want)
    if key == "root_content_contains":
        return want in pm.body or any(want.encode() in a.data for a in pm.attachments)
    if key == "multipart":
        return (pm.message.get_content_maintype() == "multipart") == bool(want)
    if key == "binary_body":
        return (not pm.body.strip() and len(pm.attachments) == 1) == bool(want)
    if key == "disposition":
        if not pm.attachments:
            return False
        return want == "none" or pm.attachments[0].disposition == want
    return None


def _results(rel: str, entry: dict):
    raw = (corpus_dir() / SOURCE / rel).read_bytes()
    pm = parse_bytes(raw)
    for i, check in enumerate(entry.get("checks") or []):
        for key, want in assertions(check):
            yield i, check, key, want, evaluate(pm, key, want, check), raw


def _cases():
    exp = load_expected(SOURCE)
    if not exp:
        return [pytest.param(None, None, marks=pytest.mark.skip(
            reason=f"enmime corpus not available under {corpus_dir()}"))]
    return [pytest.param(rel, entry, id=rel.split("/", 1)[-1]) for rel, entry in exp.items()
            if isinstance(entry, dict) and entry.get("checks")]


@pytest.mark.parametrize(("rel", "entry"), _cases())
def test_enmime_mail(rel, entry):
    failed, known = [], []
    for _i, check, key, want, ok, raw in _results(rel, entry):
        if ok is None or ok:
            continue
        row = known_difference(SOURCE, {"check": check, "key": key}, raw)
        (known if row else failed).append(f"{check.get('test')}: {key}={want!r}"
                                          + (f" ({row})" if row else ""))
    assert not failed, failed
    if known:
        pytest.xfail("documented differences: " + "; ".join(known))


def enmime_rates() -> dict[str, tuple[int, int]]:
    """key -> (passed, applicable) over all checks, documented differences counted as failed."""
    return pass_rates((key, ok) for rel, entry in load_expected(SOURCE).items()
                      if isinstance(entry, dict)
                      for _i, _check, key, _want, ok, _raw in _results(rel, entry))


def test_enmime_pass_rates(record_property):
    require_corpus(SOURCE)
    rates = enmime_rates()
    total = [sum(a for a, _b in rates.values()), sum(b for _a, b in rates.values())]
    for k, (ok, n) in rates.items():
        print(f"enmime {k:26} {ok}/{n}")
        record_property(f"enmime_{k}", f"{ok}/{n}")
    print(f"enmime {'all assertions':26} {total[0]}/{total[1]}")
