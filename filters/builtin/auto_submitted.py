"""Machine-generated mail and mail loops: must the help desk stay silent (no auto-reply)?

``check(mail, ...)`` returns ``Verdict(name="auto_submitted", hit, reason, data)`` where
``data = {"kind": K, "out_of_office": bool}`` and K is one of

``loop``           our own loop header, ``X-Loop``/``X-No-Loop``/``X-OTRS-Loop``/..., a sender
                   that is one of our own system addresses, or a Message-ID of our own domain
``auto-replied``   RFC 3834 ``Auto-Submitted: auto-replied``, ``Precedence: auto_reply``,
                   ``X-Autoreply``/``X-Autorespond``
``out-of-office``  vacation / out-of-office reply (Exchange, Zimbra, Gmail, Outlook subjects)
``auto-generated`` ``Auto-Submitted`` other than ``no`` (auto-generated, auto-notified, ...)
``suppress``       ``X-Auto-Response-Suppress: All|OOF|AutoReply`` (Exchange asks: no auto-reply)
``report``         a ``multipart/report`` (DSN, MDN, ARF): always machine-made
``bulk``           ``Precedence: bulk|junk``
``list``           ``Precedence: list``, ``List-Id``, ``List-Unsubscribe``
``noreply``        sender matches ``noreply_regex`` (mailer-daemon, postmaster, no-reply, ...)
``null-sender``    ``Return-Path: <>`` (bounces and other notifications)

Rules run in the order above (most specific first); the first hit decides ``kind`` and
``reason``; ``out_of_office`` is computed independently. ``Auto-Submitted: no`` is a human mail.
A human subject such as "Re: Out of office planning" is not an out-of-office reply: subject
rules only match auto-reply prefixes ("Out of Office:", "Automatic reply:", ...) at the start.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from filters.builtin.verdict import Verdict
from gateway.config.schema import Key
from gateway.parts import Prefilter
from gateway.mail import ParsedMail

NAME = "auto_submitted"

DEFAULT_LOOP_HEADER = "X-Ticketgate-Loop"

# Local parts (before the @) of senders that never read replies.
DEFAULT_NOREPLY_REGEX = (
    r"^(?:mailer[-_.]?daemon|mail[-_.]?daemon|postmaster|post_master|"
    r"no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply|"
    r"bounces?|bounce[-+_.].*|.*[-_.]no[-_.]?reply|no[-_.]?reply[-+_.].*|"
    r"listserv|majordomo|mdaemon|autoreply|auto[-_.]?responder)(?:\+[^@]*)?(?:@|$)"
)

# Other loop headers: any value except an explicit false marks the mail (OTRS LoopDetection.t).
_LOOP_HEADERS = ("X-Loop", "X-No-Loop", "X-OTRS-Loop", "X-Zammad-Loop", "X-RT-Loop-Prevention")
_FALSE = {"no", "false", "0", "off"}

_PRECEDENCE_KIND = {"bulk": "bulk", "junk": "bulk", "list": "list", "auto_reply": "auto-replied",
                    "auto-reply": "auto-replied"}
_AUTOREPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-AutoReply-From",
                      "X-Mail-Autoreply", "X-Vacation")
_SUPPRESS_VALUES = {"all", "oof", "autoreply"}

# Auto-reply subject prefixes (anchored; followed by ':' so "Out of office planning" is human).
_OOO_SUBJECT = re.compile(
    r"^\s*(?:"
    r"out\s+of\s+(?:the\s+)?office(?:\s+auto\s*-?\s*reply)?|auto(?:matic)?\s*-?\s*reply|"
    r"auto(?:matic)?\s*-?\s*response|autoresponder|vacation(?:\s+(?:reply|response))?|"
    r"abwesenheitsnotiz|automatische\s+antwort|abwesend|"
    r"r[ée]ponse\s+automatique|absence|respuesta\s+autom[áa]tica|fuera\s+de\s+la\s+oficina|"
    r"risposta\s+automatica|fuori\s+sede|automatisch\s+antwoord|afwezig|"
    r"automatyczna\s+odpowied[źz]|automatick[áa]\s+odpov[ěe]d|"
    r"arpus\s+biroja\s+atrasanas\s+automatiska\s+atbilde|automatiska\s+atbilde|atvaļinājums"
    r")\s*:",
    re.I,
)
# "Jane Doe is out of the office." (Lotus Notes) -- only a whole, un-prefixed subject.
_NOTES_OOO_SUBJECT = re.compile(r"^(?!\s*(?:re|aw|fwd?|wg|sv)\s*:)[^:]{1,80}\bis out of the office\b", re.I)


def _addr_of(value: str | None) -> str:
    if not value:
        return ""
    m = re.search(r"<([^<>]*)>", value)
    return (m.group(1) if m else value).strip().lower()


def _token(value: str) -> str:
    """First token of a structured header value: 'auto-replied (zimbra; vacation)' -> 'auto-replied'."""
    return re.split(r"[\s;(]", value.strip(), maxsplit=1)[0].lower() if value.strip() else ""


def _out_of_office(mail: ParsedMail) -> tuple[bool, str]:
    """Is this a vacation / out-of-office reply? (Zammad's out_of_office_check, extended)."""
    auto = mail.header("Auto-Submitted")
    if auto is not None and _token(auto) == "auto-replied":
        return True, f"Auto-Submitted: {auto.strip()}"
    for h in _AUTOREPLY_HEADERS:
        v = mail.header(h)
        if v is not None and v.strip().lower() not in _FALSE:
            return True, f"{h}: {v.strip()}"
    suppress = mail.header("X-Auto-Response-Suppress")
    if suppress is not None and mail.header("X-MS-Exchange-Inbox-Rules-Loop") is not None:
        values = {t.strip().lower() for t in suppress.split(",")}
        if values & _SUPPRESS_VALUES:
            return True, f"X-Auto-Response-Suppress: {suppress.strip()} + X-MS-Exchange-Inbox-Rules-Loop"
    if (mail.header("X-MS-Exchange-Generated-Message-Source") or "").strip().lower().startswith("mailbox rules"):
        return True, "X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent"
    subject = mail.subject or ""
    if _OOO_SUBJECT.search(subject) or _NOTES_OOO_SUBJECT.search(subject):
        return True, f"Subject: {subject[:60]}"
    return False, ""


def check(
    mail: ParsedMail,
    *,
    system_addresses: Iterable[str] = (),
    loop_header: str = DEFAULT_LOOP_HEADER,
    noreply_regex: str | re.Pattern[str] = DEFAULT_NOREPLY_REGEX,
    own_domains: Iterable[str] = (),
) -> Verdict:
    """Is ``mail`` machine-generated or part of a loop? See the module docstring for ``kind``.

    ``system_addresses``: the help desk's own addresses; a mail *from* one of them is a loop.
    ``loop_header``: the header our outgoing mail carries (any value but no/false counts).
    ``noreply_regex``: matched (search, case-insensitive) against the sender's address.
    ``own_domains``: host names of our Message-IDs; an incoming Message-ID ``<...@domain>``
    with exactly such a domain came from ourselves (Zammad's check).
    """
    ooo, ooo_reason = _out_of_office(mail)

    def hit(kind: str, reason: str) -> Verdict:
        return Verdict(NAME, True, reason, {"kind": kind, "out_of_office": ooo})

    # --- loops
    for h in (loop_header, *_LOOP_HEADERS):
        v = mail.header(h)
        if v is not None and v.strip().lower() not in _FALSE:
            return hit("loop", f"{h}: {v.strip()[:60]}")
    senders = {a.email.lower() for a in mail.from_}
    sender_hdr = _addr_of(mail.header("Sender"))
    if sender_hdr:
        senders.add(sender_hdr)
    system = {a.strip().lower() for a in system_addresses if a and a.strip()}
    own = senders & system
    if own:
        return hit("loop", f"From: {sorted(own)[0]} is a system address")
    domains = {d.strip().lower() for d in own_domains if d and d.strip()}
    if domains and mail.message_id and "@" in mail.message_id:
        domain = mail.message_id.rsplit("@", 1)[1].strip().lower()
        if domain in domains:
            return hit("loop", f"Message-ID: <{mail.message_id}> is from our own domain")

    # --- RFC 3834 and vendor auto-reply markers
    auto = mail.header("Auto-Submitted")
    if auto is not None and _token(auto) not in ("", "no"):
        token = _token(auto)
        if token == "auto-replied":
            return hit("out-of-office" if ooo and "vacation" in auto.lower() else "auto-replied",
                       f"Auto-Submitted: {auto.strip()}")
        return hit("auto-generated", f"Auto-Submitted: {auto.strip()}")
    for h in _AUTOREPLY_HEADERS:
        v = mail.header(h)
        if v is not None and v.strip().lower() not in _FALSE:
            return hit("auto-replied", f"{h}: {v.strip()}")
    if ooo:
        return hit("out-of-office", ooo_reason)
    suppress = mail.header("X-Auto-Response-Suppress")
    if suppress is not None:
        values = {t.strip().lower() for t in suppress.split(",")}
        if values & _SUPPRESS_VALUES:
            return hit("suppress", f"X-Auto-Response-Suppress: {suppress.strip()}")
    msg = mail.message
    if msg is not None and msg.get_content_type() == "multipart/report":
        return hit("report", f"Content-Type: multipart/report; report-type={msg.get_param('report-type') or '?'}")

    # --- bulk and lists
    prec = mail.header("Precedence")
    if prec is not None and _token(prec) in _PRECEDENCE_KIND:
        return hit(_PRECEDENCE_KIND[_token(prec)], f"Precedence: {prec.strip()}")
    for h in ("List-Id", "List-Unsubscribe"):
        v = mail.header(h)
        if v is not None and v.strip():
            return hit("list", f"{h}: {v.strip()[:60]}")

    # --- senders that are machines
    rx = noreply_regex if isinstance(noreply_regex, re.Pattern) else re.compile(noreply_regex, re.I)
    for addr in sorted(senders):
        if rx.search(addr):
            return hit("noreply", f"From: {addr} matches the no-reply pattern")
    rp = mail.header("Return-Path")
    if rp is not None and rp.strip() in ("<>", ""):
        return hit("null-sender", "Return-Path: <>")

    return Verdict(NAME, False, "", {"kind": None, "out_of_office": False})


def _check(mail, envelope, settings, config) -> Verdict:
    kwargs = {"system_addresses": [sa.address for sa in config.system_addresses],
              "loop_header": settings["loop_header"],
              "own_domains": [config.fqdn] if config.fqdn != "localhost" else []}
    if settings["noreply_regex"]:
        kwargs["noreply_regex"] = settings["noreply_regex"]
    return check(mail, **kwargs)


def _validate(settings, config) -> list:
    try:
        re.compile(settings["noreply_regex"] or DEFAULT_NOREPLY_REGEX)
    except re.error as exc:
        return [("noreply_regex", f"not a regular expression: {exc}")]
    return []


PREFILTER = Prefilter(
    NAME, _check, doc="loops, RFC 3834 auto-replies, out-of-office, bulk and no-reply senders",
    settings={"loop_header": Key(str, DEFAULT_LOOP_HEADER, "header our own mail carries; "
                                                           "seeing it back is a loop"),
              "noreply_regex": Key(str, None, "sender addresses that are machines (default: "
                                              "mailer-daemon, postmaster, no-reply, ...)")},
    silences_auto_response=True,
    # our own mail coming back (loop header, own address): never notify agents on it
    silences_notifications=lambda data: data.get("kind") == "loop",
    validate=_validate)
