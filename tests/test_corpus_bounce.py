"""Corpus measurement for the bounce and auto-submitted pre-filters.

Reads the shared corpus (``$TICKETGATE_CORPUS`` or ``<repo>/../shared/corpus``); skips when absent.
Run ``.venv/bin/pytest tests/test_corpus_bounce.py -q -s`` to see the figures, or
``.venv/bin/python tests/test_corpus_bounce.py`` for the report alone.

Floors are requirements (see the comment above SISIMAI_MIN_PRECISION), not today's figures.
Baseline for comparison (flufl.bounce 6.0.0, all_failures() non-empty = bounce, measured once
in a separate venv): sisimai detection P=0.994 R=0.827; bounce-email-rb 24/26 bounces, 0 FP.
"""
from __future__ import annotations

import email
import email.policy
import os
import re
from pathlib import Path

import pytest
import yaml

from filters.builtin import auto_submitted, bounce
from gateway.mail import ParsedMail

REPO = Path(__file__).resolve().parent.parent


def _corpus_dir() -> Path | None:
    env = os.environ.get("TICKETGATE_CORPUS")
    path = Path(env) if env else REPO.parent / "shared" / "corpus"
    return path if path.is_dir() else None


CORPUS = _corpus_dir()
needs_corpus = pytest.mark.skipif(
    CORPUS is None, reason="shared corpus not found: set $TICKETGATE_CORPUS or put it at <repo>/../shared/corpus")

PARSE_FALLBACKS: list[str] = []


def load(path: Path | bytes) -> ParsedMail:
    """Parse with the project parser; fall back to a bare stdlib parse when it raises."""
    raw = path if isinstance(path, bytes) else path.read_bytes()
    try:
        from gateway.mail import parse
        return parse(raw)
    except Exception as exc:  # noqa: BLE001 - the parser is being hardened elsewhere
        PARSE_FALLBACKS.append(f"{path if not isinstance(path, bytes) else '<bytes>'}: {exc!r}")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        headers = []
        for k, v in msg.raw_items():
            try:
                headers.append((k, str(msg.policy.header_factory(k, v))))
            except Exception:  # noqa: BLE001
                headers.append((k, str(v)))
        pm = ParsedMail(raw=raw, message=msg, headers=headers)
        pm.subject = (pm.header("Subject") or "").strip()
        return pm


def _yaml(rel: str):
    with open(CORPUS / rel, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float]:
    return (tp / (tp + fp) if tp + fp else 1.0), (tp / (tp + fn) if tp + fn else 1.0)


REPORT: dict[str, str] = {}


def _report(name: str, line: str) -> None:
    REPORT[name] = line
    print(f"\n[corpus] {name}: {line}")


# ----------------------------------------------------------------------------- sisimai

def measure_sisimai() -> dict:
    exp = _yaml("sisimai/expected.yml")
    tp = fp = fn = tn = 0
    failures: list[str] = []
    auto_ok = auto_n = 0
    perm_ok = perm_n = 0
    status_ok = status_n = 0
    class_ok = class_n = 0
    for rel, e in sorted(exp.items()):
        mail = load(CORPUS / "sisimai" / rel)
        v = bounce.check(mail)
        want = e["kind"] == "bounce"
        if v.hit and want:
            tp += 1
        elif v.hit:
            fp += 1
            failures.append(f"FP {rel} ({e['kind']}): {v.reason}")
        elif want:
            fn += 1
            failures.append(f"FN {rel}: subject={mail.subject[:50]!r}")
        else:
            tn += 1
        if e["kind"] == "auto_reply":
            auto_n += 1
            a = auto_submitted.check(mail)
            auto_ok += (a.hit and not v.hit)
            if not (a.hit and not v.hit):
                failures.append(f"AUTO {rel}: auto={a.reason!r} bounce={v.hit}")
        if want and v.hit:
            results = e.get("results") or []
            hard = any(r.get("hard_bounce") for r in results)
            if hard:  # sisimai 'hard' (user/host unknown...): must be permanent for us
                perm_n += 1
                perm_ok += v.data["permanent"]
            statuses = {r.get("status") for r in results if r.get("status")}
            if statuses:
                status_n += 1
                status_ok += v.data["status"] in statuses
                class_n += 1
                class_ok += v.data["status"][:1] in {s[:1] for s in statuses}
    p, r = _prf(tp, fp, fn)
    return dict(tp=tp, fp=fp, fn=fn, tn=tn, precision=p, recall=r, failures=failures,
                auto=(auto_ok, auto_n), hard_permanent=(perm_ok, perm_n),
                status_exact=(status_ok, status_n), status_class=(class_ok, class_n))


# ----------------------------------------------------------------------------- flufl.bounce

def measure_flufl() -> dict:
    exp = _yaml("flufl-bounce/expected.yml")
    det_tp = det_fn = 0
    r_tp = r_fp = r_fn = 0
    perm_ok = perm_n = 0
    failures: list[str] = []
    for rel, e in sorted(exp.items()):
        mail = load(CORPUS / "flufl-bounce" / rel)
        v = bounce.check(mail)
        want: set[str] = set()
        kinds = set()
        for d in e.get("detectors") or []:
            want |= {a.lower() for a in d.get("addresses") or []}
            kinds.add(d.get("failure"))
        for key in ("scan_message", "all_failures"):
            val = e.get(key)
            if isinstance(val, list):
                want |= {a.lower() for a in val}
            elif isinstance(val, dict):
                for lst in val.values():
                    want |= {a.lower() for a in lst or []}
        if not want:
            continue  # 'no address may be reported' entries carry no positive fact
        if v.hit:
            det_tp += 1
        else:
            det_fn += 1
            failures.append(f"FN {rel}: subject={mail.subject[:50]!r}")
        got = set(v.data["recipients"]) if v.hit else set()
        r_tp += len(got & want)
        r_fp += len(got - want)
        r_fn += len(want - got)
        if got != want and v.hit:
            failures.append(f"RCPT {rel}: got={sorted(got)} want={sorted(want)}")
        if v.hit and len(kinds) == 1:
            perm_n += 1
            ok = v.data["permanent"] == (kinds == {"permanent"})
            perm_ok += ok
            if not ok:
                failures.append(f"PERM {rel}: permanent={v.data['permanent']} want={kinds}")
    p, r = _prf(r_tp, r_fp, r_fn)
    return dict(detected=det_tp, missed=det_fn, rcpt_tp=r_tp, rcpt_fp=r_fp, rcpt_fn=r_fn,
                precision=p, recall=r, permanent=(perm_ok, perm_n), failures=failures)


# ----------------------------------------------------------------------------- bounce_email (ruby)

def measure_bounce_email_rb() -> dict:
    exp = _yaml("bounce-email-rb/expected.yml")
    tp = fp = fn = tn = 0
    code_ok = code_n = 0
    orig_ok = orig_n = 0
    failures: list[str] = []
    for rel, e in sorted(exp.items()):
        mail = load(CORPUS / "bounce-email-rb" / rel)
        v = bounce.check(mail)
        want = bool(e["bounced"])
        tp += v.hit and want
        fp += v.hit and not want
        fn += want and not v.hit
        tn += not want and not v.hit
        if v.hit != want:
            failures.append(f"{'FP' if v.hit else 'FN'} {rel}: {v.reason or mail.subject[:50]!r}")
        code = e.get("code")
        if want and code and code != "unknown":
            code_n += 1
            code_ok += v.data["status"] == code
            if v.data["status"] != code:
                failures.append(f"CODE {rel}: got={v.data['status']!r} want={code}")
        om = e.get("original_mail") or {}
        if want and om.get("present") and om.get("message_id"):
            orig_n += 1
            orig_ok += bool(v.data["original_message_id"])
            if not v.data["original_message_id"]:
                failures.append(f"ORIG {rel}: no original Message-ID")
    p, r = _prf(tp, fp, fn)
    return dict(tp=tp, fp=fp, fn=fn, tn=tn, precision=p, recall=r, code=(code_ok, code_n),
                original=(orig_ok, orig_n), failures=failures)


# ----------------------------------------------------------------------------- flanker

def measure_flanker() -> dict:
    exp = _yaml("flanker/expected.yml")
    ok = n = 0
    failures: list[str] = []
    for rel, e in sorted(exp.items()):
        path = CORPUS / "flanker" / rel
        if not path.is_file():
            continue
        mail = load(path)
        v = bounce.check(mail)
        checks = []
        if "is_bounce" in e:
            checks.append(("is_bounce", v.hit == e["is_bounce"]))
        if e.get("bounce_status"):
            checks.append(("bounce_status", v.data["status"] == e["bounce_status"]))
        if "/bounce/" in rel and "is_bounce" not in e:
            checks.append(("bounce dir", v.hit))
        if "/complaints/" in rel:
            checks.append(("complaint is no bounce", not v.hit))
        for what, good in checks:
            n += 1
            ok += good
            if not good:
                failures.append(f"{what} {rel}: hit={v.hit} status={v.data['status']!r} {v.reason}")
    return dict(ok=ok, n=n, failures=failures)


# ----------------------------------------------------------------------------- negatives

NEGATIVE_DIRS = ("zammad", "otrs", "rt", "cpython-email", "ruby-mail")
_DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
_DAEMON_FROM = re.compile(r"mailer[-_.]?daemon|postmaster|mail\s+delivery\s+(?:subsystem|system)", re.I)
_NOTICE_SUBJECT = re.compile(r"undeliver|returned\s+mail|delivery\s+(?:status|fail)|failure\s+notice", re.I)


def is_evident_bounce(raw: bytes) -> bool:
    """A bounce by facts any reader can check, independent of the filter under test: it carries
    an RFC 3464 delivery-status part, or a mailer daemon sends it with a non-delivery subject.
    A parser-corpus mail taken for a bounce must be one of these (no reviewed-file list)."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    if any(p.get_content_type() in _DSN_TYPES for p in msg.walk()):
        return True
    return bool(_DAEMON_FROM.search(str(msg.get("From", "")))
                and _NOTICE_SUBJECT.search(str(msg.get("Subject", ""))))


def measure_negatives() -> dict:
    """Mails of the parser corpora: bounces found there are listed for review (not asserted as FP)."""
    hits: list[str] = []
    false_pos: list[str] = []
    n = 0
    for d in NEGATIVE_DIRS:
        root = CORPUS / d
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.suffix in (".md", ".yml", ".yaml", ".py", ".t", ".pm", ".rb"):
                continue
            if path.stat().st_size > 2_000_000:
                continue
            n += 1
            raw = path.read_bytes()
            v = bounce.check(load(raw))
            if v.hit:
                hits.append(f"{path.relative_to(CORPUS)}: {v.reason} rcpt={v.data['recipients']}")
                if not is_evident_bounce(raw):
                    false_pos.append(hits[-1])
    return dict(n=n, hits=hits, false_positives=false_pos)


# ----------------------------------------------------------------------------- tests

def _fmt(fs: list[str], limit: int = 40) -> str:
    return "\n".join(fs[:limit]) + (f"\n... {len(fs) - limit} more" if len(fs) > limit else "")


@needs_corpus
def test_sisimai_bounce_detection():
    m = measure_sisimai()
    _report("sisimai", f"detection P={m['precision']:.3f} R={m['recall']:.3f} (tp={m['tp']} fp={m['fp']} "
            f"fn={m['fn']} tn={m['tn']}); auto-replies recognised {m['auto'][0]}/{m['auto'][1]}; "
            f"hard->permanent {m['hard_permanent'][0]}/{m['hard_permanent'][1]}; status exact "
            f"{m['status_exact'][0]}/{m['status_exact'][1]}, class {m['status_class'][0]}/{m['status_class'][1]}")
    assert m["precision"] >= SISIMAI_MIN_PRECISION, _fmt(m["failures"])
    assert m["recall"] >= SISIMAI_MIN_RECALL, _fmt(m["failures"])
    assert m["auto"][0] == m["auto"][1], _fmt(m["failures"])
    assert m["hard_permanent"][0] >= SISIMAI_MIN_HARD_PERMANENT * m["hard_permanent"][1], _fmt(m["failures"])
    assert m["status_class"][0] >= SISIMAI_MIN_STATUS_CLASS * m["status_class"][1], _fmt(m["failures"])


@needs_corpus
def test_flufl_bounce_recipients():
    m = measure_flufl()
    _report("flufl-bounce", f"detected {m['detected']}/{m['detected'] + m['missed']}; recipients "
            f"P={m['precision']:.3f} R={m['recall']:.3f} (tp={m['rcpt_tp']} fp={m['rcpt_fp']} fn={m['rcpt_fn']}); "
            f"permanent/temporary {m['permanent'][0]}/{m['permanent'][1]}")
    assert m["detected"] >= FLUFL_MIN_DETECTED * (m["detected"] + m["missed"]), _fmt(m["failures"])
    assert m["precision"] >= FLUFL_MIN_RCPT_PRECISION, _fmt(m["failures"])
    assert m["recall"] >= FLUFL_MIN_RCPT_RECALL, _fmt(m["failures"])


@needs_corpus
def test_bounce_email_rb():
    m = measure_bounce_email_rb()
    _report("bounce-email-rb", f"detection P={m['precision']:.3f} R={m['recall']:.3f} (tp={m['tp']} "
            f"fp={m['fp']} fn={m['fn']} tn={m['tn']}); code {m['code'][0]}/{m['code'][1]}; "
            f"original Message-ID {m['original'][0]}/{m['original'][1]}")
    assert m["fp"] == 0, _fmt(m["failures"])
    assert m["recall"] >= RB_MIN_RECALL, _fmt(m["failures"])
    assert m["code"][0] >= RB_MIN_CODE * m["code"][1], _fmt(m["failures"])
    assert m["original"][0] >= RB_MIN_ORIGINAL * m["original"][1], _fmt(m["failures"])


@needs_corpus
def test_flanker_bounces():
    m = measure_flanker()
    _report("flanker", f"{m['ok']}/{m['n']} bounce facts hold")
    assert m["ok"] >= FLANKER_MIN * m["n"], _fmt(m["failures"])


@needs_corpus
def test_parser_corpora_negatives():
    m = measure_negatives()
    _report("parser corpora", f"{len(m['hits'])} of {m['n']} mails taken for bounces:\n    " + "\n    ".join(m["hits"]))
    assert not m["false_positives"], "taken for bounces but not evidently bounces:\n" + _fmt(m["false_positives"])


@needs_corpus
def test_zammad_bounces_point_to_original():
    exp = _yaml("zammad/expected-behaviour.yml")
    for rel in exp:
        path = CORPUS / "zammad" / rel
        if not path.is_file():
            continue
        raw = path.read_bytes()
        v = bounce.check(load(raw))
        assert v.hit, f"{rel}: {v}"
        ids = {m.group(2).strip("<>") for m in re.finditer(rb"^(References|Message-ID): (\S*)".decode(), raw.decode("utf-8", "replace"), re.M)}
        assert v.data["original_message_id"] in ids, f"{rel}: {v.data['original_message_id']} not in {ids}"


# ----------------------------------------------------------------------------- scenarios

FQDN = "helpdesk.example.test"


def _scenarios(name: str) -> list:
    if CORPUS is None or not (CORPUS / "scenarios" / name).is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"scenarios/{name} not found"), id="absent")]
    return [pytest.param(s, id=s["id"]) for s in _yaml(f"scenarios/{name}")["scenarios"]]


def _fill(template: str) -> bytes:
    text = template.replace("{FQDN}", FQDN)
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


@pytest.mark.parametrize("sc", _scenarios("zammad-auto-response.yml"))
def test_zammad_auto_response(sc):
    v = auto_submitted.check(load(_fill(sc["mail"])), own_domains=(FQDN,))
    assert (not v.hit) == sc["expect_send_auto_response"], v


@pytest.mark.parametrize("sc", _scenarios("zammad-out-of-office.yml"))
def test_zammad_out_of_office(sc):
    v = auto_submitted.check(load(_fill(sc["mail"])))
    assert v.data["out_of_office"] == sc["expect_out_of_office"], v
    if sc["expect_out_of_office"]:
        assert v.hit
    assert not bounce.check(load(_fill(sc["mail"]))).hit


@pytest.mark.parametrize("sc", _scenarios("otrs-loop-detection.yml"))
def test_otrs_loop_detection(sc):
    v = auto_submitted.check(load(_fill(sc["mail"])))
    assert v.hit == sc["expect_loop_flag"], v


# Floors are requirements, not today's figure minus a margin: a wrong bounce verdict silences a
# customer (precision >= 0.99 where the corpus allows it), a missed recipient keeps mailing a dead
# address (issue 11: flufl-bounce recipient recall >= 0.98). Reached on the shared corpus when
# last changed: sisimai P=1.000 R=0.995, hard->permanent 111/112, status class 329/374; flufl
# detected 73/74, recipients P=0.989 R=0.989; bounce-email-rb 26/26, 0 FP, code 5/7, original
# 16/16; flanker 10/10; parser corpora: 15 bounces found, all evident bounces.
SISIMAI_MIN_PRECISION = 0.99
SISIMAI_MIN_RECALL = 0.98
SISIMAI_MIN_HARD_PERMANENT = 0.97
SISIMAI_MIN_STATUS_CLASS = 0.85
FLUFL_MIN_DETECTED = 0.95
FLUFL_MIN_RCPT_PRECISION = 0.98
FLUFL_MIN_RCPT_RECALL = 0.98
RB_MIN_RECALL = 0.96
RB_MIN_CODE = 0.70
RB_MIN_ORIGINAL = 0.93
FLANKER_MIN = 0.90
if __name__ == "__main__":  # plain report: .venv/bin/python tests/test_corpus_bounce.py
    import sys
    if CORPUS is None:
        sys.exit("corpus not found")
    for name, fn in [("sisimai", measure_sisimai), ("flufl", measure_flufl), ("bounce-email-rb", measure_bounce_email_rb),
                     ("flanker", measure_flanker), ("negatives", measure_negatives)]:
        res = fn()
        fails = res.pop("failures", None) or res.pop("hits", [])
        print(f"== {name}: {res}")
        if "-v" in sys.argv:
            print("   " + "\n   ".join(fails))
    if PARSE_FALLBACKS:
        print("parser fallbacks:", *PARSE_FALLBACKS, sep="\n  ")
