"""Benchmark and correctness comparison of the mail parsing options on the shared corpus.

    .venv/bin/python bench/parse.py [--repeat N] [--huge-mb 50]

Options compared (all produce a gateway.mail.ParsedMail so that the same corpus checks apply):
  ticketgate      gateway.mail.parser.parse_bytes: stdlib BytesParser (compat32 tree) + our
                  tolerant decoding layer (the CHOSEN one)
  tg+default      the same layer on a policy.default tree (TREE_POLICY swapped)
  stdlib-default  plain policy.default API (get_body / iter_attachments / get_content), i.e.
                  the first-cut parser, with a try/except per step
  mail-parser     mailparser.parse_from_bytes, mapped to ParsedMail

Prints mails/s, exceptions, Zammad per-field pass rates, OTRS per-check pass rates and the
time for one huge synthetic mail.
"""
from __future__ import annotations

import argparse
import base64
import email
import email.policy
import email.utils
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from corpus import MAIL_DIRS, mail_files  # noqa: E402
from gateway.mail import parser as mail_parse  # noqa: E402
from gateway.mail import Address, Attachment, ParsedMail  # noqa: E402
from gateway.mail.text import html_to_text  # noqa: E402
from test_corpus_parse import otrs_rates, zammad_rates  # noqa: E402


def parse_ticketgate(raw: bytes) -> ParsedMail:
    return mail_parse.parse_bytes(raw)


def parse_tg_default(raw: bytes) -> ParsedMail:
    old = mail_parse.TREE_POLICY
    mail_parse.TREE_POLICY = email.policy.default
    try:
        return mail_parse.parse_bytes(raw)
    finally:
        mail_parse.TREE_POLICY = old


def _addrs(values) -> list[Address]:
    return [Address(name=n, email=a.lower()) for n, a in email.utils.getaddresses(values) if a]


def parse_stdlib_default(raw: bytes) -> ParsedMail:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    pm = ParsedMail(raw=raw, message=msg)
    for k, v in msg.raw_items():
        try:
            pm.headers.append((k, str(msg.policy.header_factory(k, v))))
        except Exception:  # noqa: BLE001
            pm.headers.append((k, str(v)))
    try:
        pm.subject = str(msg.get("Subject", "") or "").strip()
    except Exception as exc:  # noqa: BLE001
        pm.defects.append(str(exc))
    try:
        pm.from_ = _addrs([str(v) for v in msg.get_all("From", [])])
    except Exception as exc:  # noqa: BLE001
        pm.defects.append(str(exc))
    try:
        body = msg.get_body(("plain", "html"))
        if body is not None:
            pm.content_type = body.get_content_type()
            pm.charset = body.get_content_charset() or ""
            pm.body = body.get_content()
            if pm.content_type == "text/html":
                pm.body_html = pm.body
                pm.body = html_to_text(pm.body)
    except Exception as exc:  # noqa: BLE001
        pm.defects.append(f"body: {exc}")
    try:
        for part in msg.iter_attachments():
            pm.attachments.append(Attachment(
                filename=part.get_filename() or "", content_type=part.get_content_type(),
                data=part.get_payload(decode=True) or b""))
    except Exception as exc:  # noqa: BLE001
        pm.defects.append(f"attachments: {exc}")
    return pm


def parse_mailparser(raw: bytes) -> ParsedMail:
    import logging

    import mailparser

    logging.getLogger("mailparser").setLevel(logging.CRITICAL)

    mp = mailparser.parse_from_bytes(raw)
    pm = ParsedMail(raw=raw)
    pm.headers = [(k, str(v)) for k, v in (mp.headers or {}).items()]
    pm.subject = mp.subject or ""
    pm.from_ = [Address(name=n or "", email=(a or "").lower()) for n, a in (mp.from_ or []) if a]
    if mp.text_plain:
        pm.body = "\n".join(mp.text_plain)
    elif mp.text_html:
        pm.body_html = "\n".join(mp.text_html)
        pm.body = html_to_text(pm.body_html)
        pm.content_type = "text/html"
    if mp.text_html:
        pm.body_html = "\n".join(mp.text_html)
    for a in mp.attachments:
        payload = a.get("payload") or ""
        if a.get("binary"):
            data = base64.b64decode(payload)
        else:
            data = payload.encode("utf-8", "surrogateescape")
        pm.attachments.append(Attachment(filename=a.get("filename") or "",
                                         content_type=a.get("mail_content_type") or "",
                                         data=data))
    return pm


OPTIONS = {
    "ticketgate": parse_ticketgate,
    "tg+default": parse_tg_default,
    "stdlib-default": parse_stdlib_default,
    "mail-parser": parse_mailparser,
}
CHOSEN = "ticketgate"


def _safe(fn):
    def wrapped(raw):
        try:
            return fn(raw)
        except Exception as exc:  # noqa: BLE001
            return ParsedMail(raw=raw, defects=[f"EXCEPTION {type(exc).__name__}: {exc}"])
    return wrapped


def huge_mail(mb: int) -> bytes:
    blob = os.urandom(mb * 1024 * 1024)
    return (b'Subject: huge\nFrom: a@b.org\nContent-Type: multipart/mixed; boundary="b"\n\n--b\n'
            b"Content-Type: text/plain\n\nsee attachment\n--b\n"
            b'Content-Type: application/octet-stream; name="big.bin"\n'
            b"Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(blob) + b"--b--\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--huge-mb", type=int, default=50)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    raws = [p.read_bytes() for d in MAIL_DIRS for p in mail_files(d)]
    if not raws:
        sys.exit("corpus not found (set $TICKETGATE_CORPUS)")
    print(f"corpus: {len(raws)} mails, {sum(map(len, raws)) / 1e6:.1f} MB")
    huge = huge_mail(args.huge_mb) if args.huge_mb else None
    for name, fn in OPTIONS.items():
        if args.only and name not in args.only:
            continue
        exc = 0
        for raw in raws:
            try:
                fn(raw)
            except Exception:  # noqa: BLE001
                exc += 1
        safe = _safe(fn)
        best = float("inf")
        for _ in range(args.repeat):
            t = time.perf_counter()
            for raw in raws:
                safe(raw)
            best = min(best, time.perf_counter() - t)
        z = zammad_rates(safe)
        o = otrs_rates(safe)
        zs = " ".join(f"{k}={a}/{b}" for k, (a, b) in z.items())
        zt = sum(a for a, _ in z.values()), sum(b for _, b in z.values())
        ot = sum(a for a, _ in o.values()), sum(b for _, b in o.values())
        line = (f"{name:15} {len(raws) / best:7.0f} mails/s  exceptions={exc:3}  "
                f"zammad={zt[0]}/{zt[1]}  otrs={ot[0]}/{ot[1]}")
        if huge is not None:
            t = time.perf_counter()
            try:
                safe(huge)
                line += f"  {args.huge_mb}MB-mail={time.perf_counter() - t:.2f}s"
            except MemoryError:
                line += "  huge: MemoryError"
        print(line + ("   <== chosen" if name == CHOSEN else ""))
        print(f"{'':15} zammad fields: {zs}")
        print(f"{'':15} otrs checks:   " + " ".join(f"{k}={a}/{b}" for k, (a, b) in o.items()))


if __name__ == "__main__":
    main()
