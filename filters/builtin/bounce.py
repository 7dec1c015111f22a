"""Bounce (non-delivery report) detection and analysis.

``check(mail)`` returns ``Verdict(name="bounce", hit, reason, data)`` with

``data = {"kind": K, "recipients": [failed addresses, lower-case], "status": "5.1.1" | "",
"permanent": bool, "original_message_id": str | None, "format": F}``

``kind``  ``bounce`` (hit) or, for misses that are still machine reports, ``feedback-report``
          (ARF, RFC 5965), ``mdn`` (read receipt, RFC 8098), ``delivery-success`` (a DSN whose
          recipients were all delivered/relayed/expanded), ``auto-reply`` (vacation reply
          that mentions delivery words), or None.
``permanent``  True when delivery was given up (DSN ``Action: failed``, a 5.x.x status, or a
          text bounce without delay wording); False for delay warnings (``Action: delayed``,
          4.x.x, "will keep trying").
``original_message_id``  Message-ID (no brackets) of the returned message: from the attached
          ``message/rfc822`` or ``text/rfc822-headers`` part, else from the quoted copy in the
          body text; never the bounce's own Message-ID.
``format``  which rule recognised it: ``rfc3464`` or the text-bounce rule name (``qmail``,
          ``exim``, ``postfix``, ...); handy when a new dialect needs a rule.

Decision order: (1) ``multipart/report`` with a ``report-type`` of feedback-report or
disposition-notification is not a bounce; (2) a ``message/delivery-status`` part (RFC 3464) is
parsed field by field; (3) otherwise non-standard bounces are recognised by a table of
MTA phrases, bounce subjects and machine senders (see ``_BODY_RULES``, ``_SUBJECT_RX``).
Measured against flufl.bounce 6.0 on the shared corpus: see tests/test_corpus_bounce.py.
"""
from __future__ import annotations

import email
import email.policy
import re
from email.message import Message

from filters.builtin.verdict import Verdict
from gateway.mail import ParsedMail

NAME = "bounce"

_MAX_TEXT = 256 * 1024  # scan at most this much body text
_ADDR = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+")
_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
_SMTP_CODE = re.compile(r"(?<![\d.\-])([45])[0-9]{2}(?:[ -]|$)(?![\d.])", re.M)
_MSGID_LINE = re.compile(r"^[ \t>]*Message-I[Dd]\s*:\s*<?([^\s<>]+@[^\s<>]+?)>?\s*$", re.M | re.I)

# Machine senders of bounces (local part, or display name).
_DAEMON_RX = re.compile(
    r"(?:^|<|\b)(?:mailer[-_.]?daemon|mail[-_.]?daemon|postmaster|post_master|poostmaster|"
    r"mail\s+delivery\s+(?:subsystem|system)|mail\s+deliver\s+system|mail\.delivery\.system|"
    r"mmsc\s+ndr|ndr\s+administrator|system\s+administrator|interscan|mdaemon)\b", re.I)

# Bounce subjects (anchored; a "Re:"/"Fwd:" reply to one is a human).
_SUBJECT_RX = re.compile(
    r"^\s*(?:"
    r"undeliver(?:able|ed)|undelivered\s+mail|returned\s+mail|mail\s+delivery\s+failed|"
    r"delivery\s+(?:status\s+notification|failure|failed|notification|report|has\s+failed|problem)|"
    r"(?:mail\s+)?delivery\s+status\s+notification|failure\s+notice|failed\s+delivery|failure\s+delivery|"
    r"permanent\s+delivery\s+failure|non[-\s]?delivery|nondeliverable|message\s+delivery\s+has\s+failed|"
    r"mail\s+system\s+error|mail\s+could\s+not\s+be\s+delivered|could\s+not\s+send\s+message|"
    r"there\s+was\s+an\s+error\s+sending\s+your\s+mail|delivery\s+notification|"
    r"warning:\s+message\s+.*\s+delayed|delayed\s+mail|message\s+(?:not\s+delivered|undeliverable)|"
    r"returned\s+mail|mail\s+returned|unzustellbar|nicht\s+zustellbar|non\s+remis|"
    r"notificaci[óo]n\s+de\s+estado\s+de\s+entrega|non\s+recapitabile|onbestelbaar|"
    r"ваше\s+сообщение\s+не\s+доставлено|postfix\s+smtp\s+server:\s+errors|"
    r"aws\s+notification\s+message"
    r")", re.I)
_REPLY_PREFIX = re.compile(r"^\s*(?:re|aw|sv|fwd?|wg|tr)\s*:", re.I)

# Non-standard bounce formats: (name, regex, strong). A strong phrase identifies a bounce on its
# own together with a bounce subject or a machine sender; a weak one needs a machine sender.
_BODY_RULES: list[tuple[str, re.Pattern[str], bool]] = [(n, re.compile(rx, re.I | re.M), s) for n, rx, s in [
    ("qmail", r"This is the qmail-send program|I'm afraid I wasn't able to deliver your message", True),
    ("exim", r"This message was created automatically by mail delivery\s+software", True),
    ("postfix", r"This is the mail system at host|I'm sorry to have to inform you that your message could not\s+be delivered", True),
    ("sendmail", r"-+\s*The following addresses had (?:permanent fatal errors|transient non-fatal errors)|-+\s*Transcript of session follows\s*-+|The original message was received at", True),
    ("gmail", r"Delivery to the following recipients? (?:failed|has been delayed)|Your message wasn't delivered to|Technical details of (?:permanent|temporary) failure", True),
    ("exchange", r"did not reach the following recipient|Delivery has failed to these recipients or groups|Your message (?:couldn't|could not) be delivered|Your message did not reach some or all of the intended recipients", True),
    ("domino", r"was not delivered to:\s*$|-+\s*Failure Reasons\s*-+", True),
    ("yahoo", r"Sorry, we were unable to deliver your message to the following address|Message from\s+yahoo\.com", True),
    ("dragonfly", r"This message was created automatically by mail delivery software|could not be delivered to one or more recipients", True),
    ("opensmtpd", r"Your message could not be delivered to one or more recipients", True),
    ("amazonses", r'"notificationType"\s*:\s*"Bounce"|"bounceType"\s*:\s*"(?:Permanent|Transient)"', True),
    ("smtp32", r"^Unknown user:|undeliverable to the following|could not be delivered to:", False),
    ("generic", r"(?:message|mail)\s+(?:could\s+not|couldn't|cannot|can't|was\s+not)\s+be\s+delivered|"
                r"unable\s+to\s+deliver|delivery\s+(?:to\s+the\s+following\s+recipients?\s+)?(?:has\s+)?failed|"
                r"undeliverable|user\s+unknown|unknown\s+user|no\s+such\s+(?:user|mailbox|recipient)|"
                r"mailbox\s+(?:is\s+)?(?:full|unavailable)|recipient\s+address\s+rejected|permanent\s+(?:error|failure)|"
                r"returned\s+to\s+sender|delivery\s+(?:status\s+)?notification|will\s+(?:continue\s+to|keep)\s+try", False),
]]

# Where the copy of the original message starts inside a text bounce.
_ORIGINAL_MARKER = re.compile(
    r"^.*(?:below\s+this\s+line\s+is\s+a\s+copy\s+of\s+the\s+message|this\s+is\s+a\s+copy\s+of\s+the\s+message|"
    r"original\s+message\s+(?:follows|headers)|-+\s*original\s+message\s*-+|returned\s+message|"
    r"the\s+(?:header|headers)\s+of\s+(?:the\s+)?original\s+message|unsent\s+message\s+below|"
    r"message\s+text\s+follows|copy\s+of\s+(?:the\s+)?(?:original\s+)?message|"
    r"^received:\s|^return-path:\s).*$", re.I | re.M)

# Per-format lines naming a failed recipient: group 1 is the address.
_RECIPIENT_LINE = [re.compile(rx, re.I | re.M) for rx in [
    r"^\s*<([^<>\s]+@[^<>\s]+)>\s*(?:\(expanded from[^)]*\))?\s*:",          # qmail, postfix, yahoo
    r"^\s*<?([^<>\s:]+@[^<>\s:]+?)>?\.\.\.\s",                                # sendmail "addr... User unknown"
    r"^\s*([^<>\s:]+@[^<>\s:]+)\s+on\s+\w{3},",                                 # exchange 2003 "addr on Thu,"
    r"^(?:unknown\s+user|user\s+unknown|no\s+such\s+user)\s*:\s*<?([^<>\s]+@[^<>\s]+?)>?\s*$",  # imail
    r'"emailAddress"\s*:\s*"([^"]+@[^"]+)"',                                   # amazon ses json
    r"^\s*(?:Final-Recipient|Original-Recipient)\s*:\s*(?:rfc822\s*;)?\s*<?([^<>\s]+@[^<>\s;]+?)>?\s*$",
]]
# Blocks that list failed recipients one per (indented) line.
_RECIPIENT_BLOCK = re.compile(
    r"(?:following\s+address(?:\(es\)|es)?\s+failed|following\s+recipients?\s+failed\s+permanently|"
    r"following\s+recipients?\s+has\s+been\s+delayed|was\s+not\s+delivered\s+to|"
    r"did\s+not\s+reach\s+the\s+following\s+recipient\(s\)|failure\s+reasons\s*-+|"
    r"had\s+permanent\s+fatal\s+errors\s*-+|had\s+transient\s+non-fatal\s+errors\s*-+|"
    r"delivery\s+has\s+failed\s+to\s+these\s+recipients\s+or\s+groups|"
    r"could\s+not\s+be\s+delivered\s+to:|undeliverable\s+to\s+the\s+following|"
    r"following\s+address(?:es)?\s+(?:had|has)\s+(?:a\s+)?(?:permanent\s+)?(?:errors?|problems?)|"
    r"wasn'?t\s+delivered\s+to)[^\n]*\n((?:[ \t]*\n)?(?:[^\n]*\n){1,6})",
    re.I)
_DELAY_TEXT = re.compile(
    r"will\s+(?:continue\s+to|keep)\s+try|has\s+been\s+delayed|not\s+yet\s+been\s+delivered|"
    r"delivery\s+(?:is\s+)?delayed|\(delay\)|temporary\s+(?:failure|error|problem)|"
    r"warning:\s+message\s|this\s+is\s+a\s+warning|retry\s+(?:timeout|time)\s+not\s+reached", re.I)
_NOT_RECIPIENT_LOCAL = re.compile(r"^(?:mailer[-_.]?daemon|postmaster|post_master|root|abuse|no-?reply)$", re.I)


# ----------------------------------------------------------------------------- helpers

def _part_text(part: Message) -> str:
    """Decoded text of a non-multipart part, never raising."""
    try:
        payload = part.get_payload(decode=True)
        if payload is None:
            raw = part.get_payload()
            return raw if isinstance(raw, str) else ""
        charset = part.get_content_charset() or "utf-8"
        try:
            return payload.decode(charset, errors="replace")
        except LookupError:
            return payload.decode("latin-1", errors="replace")
    except Exception:  # noqa: BLE001 - a detector never raises
        return ""


def _raw_part_text(part: Message) -> str:
    """Text of a message/* or text/* part, including sub-messages the parser made of it."""
    payload = part.get_payload()
    if isinstance(payload, list):
        chunks = []
        for sub in payload:
            try:
                chunks.append(sub.as_string(policy=email.policy.compat32) if isinstance(sub, Message) else str(sub))
            except Exception:  # noqa: BLE001
                chunks.append("\n".join(f"{k}: {v}" for k, v in sub.items()))
        return "\n\n".join(chunks)
    return _part_text(part)


def _walk(msg: Message, *, into_rfc822: bool = False):
    """Depth-first parts; does not descend into attached messages unless asked."""
    stack = [msg]
    seen = 0
    while stack and seen < 500:
        part = stack.pop(0)
        seen += 1
        yield part
        ctype = part.get_content_type()
        if part.is_multipart() and (into_rfc822 or not ctype.startswith("message/") or part is msg):
            payload = part.get_payload()
            if isinstance(payload, list):
                if ctype in ("message/rfc822", "message/global") and not into_rfc822:
                    continue
                stack[0:0] = [p for p in payload if isinstance(p, Message)]


def _report_text(mail: ParsedMail) -> str:
    """The bounce's own text: all text/* parts outside attached messages (or mail.body)."""
    msg = mail.message
    if msg is None:
        return mail.body[:_MAX_TEXT]
    chunks: list[str] = []
    for part in _walk(msg):
        ctype = part.get_content_type()
        if part.is_multipart():
            continue
        if ctype in ("text/plain", "text/html") or (part is msg and part.get_content_maintype() not in ("message",)):
            text = _part_text(part)
            if ctype == "text/html":
                text = re.sub(r"<br\s*/?>|</p>|</div>|</tr>", "\n", text, flags=re.I)
                text = re.sub(r"<[^>]+>", " ", text)
                text = re.sub(r"&lt;", "<", re.sub(r"&gt;", ">", re.sub(r"&nbsp;", " ", text)))
            chunks.append(text)
        if sum(map(len, chunks)) > _MAX_TEXT:
            break
    text = "\n".join(chunks) or mail.body
    return text[:_MAX_TEXT]


def _split_original(text: str) -> tuple[str, str]:
    """(report section, quoted original) of a text bounce."""
    m = _ORIGINAL_MARKER.search(text)
    if m and m.start() > 0:
        return text[: m.start()], text[m.start():]
    return text, ""


def _status_of(text: str) -> str:
    m = _ENHANCED.search(text or "")
    return f"{m.group(1)}.{m.group(2)}.{m.group(3)}" if m else ""


def _clean_addr(addr: str) -> str:
    addr = addr.strip().strip("<>\"'()[],;:.").lower()
    if addr.startswith("mailto:"):
        addr = addr[7:]
    return addr


def _uniq(items):
    out: list[str] = []
    for it in items:
        if it and it not in out:
            out.append(it)
    return out


# ----------------------------------------------------------------------------- RFC 3464

def _dsn_blocks(text: str) -> list[dict[str, str]]:
    """Split a message/delivery-status body into field blocks (unfolded, lower-case names)."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = None
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = {}, None
            continue
        if line[:1] in " \t" and last:
            current[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", name.strip()):
            last = name.strip().lower()
            current.setdefault(last, value.strip())
    if current:
        blocks.append(current)
    return blocks


def _addr_field(value: str) -> str:
    value = value.split(";", 1)[1] if ";" in value else value
    m = _ADDR.search(value)
    return _clean_addr(m.group(0)) if m else ""


def _parse_dsn(text: str) -> list[dict[str, str]]:
    """Per-recipient dicts: recipient, action, status, diagnostic."""
    out = []
    for block in _dsn_blocks(text):
        rcpt = _addr_field(block.get("final-recipient", "")) or _addr_field(block.get("original-recipient", ""))
        if not rcpt and "action" not in block:
            continue
        diag = block.get("diagnostic-code", "")
        status = _status_of(block.get("status", "")) or _status_of(diag)
        out.append({"recipient": rcpt, "action": block.get("action", "").split()[0].lower() if block.get("action", "").split() else "",
                    "status": status, "diagnostic": diag})
    return out


# ----------------------------------------------------------------------------- original message

def _original_message_id(mail: ParsedMail, text_original: str, report_text: str) -> str | None:
    own = (mail.message_id or "").lower()
    msg = mail.message
    candidates: list[str] = []
    if msg is not None:
        for part in _walk(msg):
            ctype = part.get_content_type()
            if ctype in ("message/rfc822", "message/global", "message/rfc822-headers"):
                payload = part.get_payload()
                subs = payload if isinstance(payload, list) else []
                for sub in subs:
                    if isinstance(sub, Message) and sub.get("Message-ID"):
                        candidates.append(str(sub.get("Message-ID")))
                if not subs:
                    candidates.extend(m.group(1) for m in _MSGID_LINE.finditer(_part_text(part)))
            elif ctype in ("text/rfc822-headers", "text/rfc822-header"):
                candidates.extend(m.group(1) for m in _MSGID_LINE.finditer(_part_text(part)))
    candidates.extend(m.group(1) for m in _MSGID_LINE.finditer(text_original))
    candidates.extend(m.group(1) for m in _MSGID_LINE.finditer(report_text))
    for cand in candidates:
        mid = cand.strip().strip("<>").strip()
        if mid and "@" in mid and mid.lower() != own:
            return mid
    return None


# ----------------------------------------------------------------------------- text bounces

def _excluded_addresses(mail: ParsedMail, original: str) -> set[str]:
    out = {a.email.lower() for a in (*mail.from_, *mail.to, *mail.cc, *mail.reply_to)}
    for h in ("Return-Path", "Delivered-To", "X-Original-To", "Sender"):
        for v in mail.header_all(h):
            out.update(_clean_addr(a) for a in _ADDR.findall(v))
    # the original sender, quoted in the returned copy
    m = re.search(r"^From:[^\n]*$", original, re.M | re.I)
    if m:
        out.update(_clean_addr(a) for a in _ADDR.findall(m.group(0)))
    return out


def _text_recipients(report: str, excluded: set[str]) -> list[str]:
    found: list[str] = []
    for rx in _RECIPIENT_LINE:
        found.extend(_clean_addr(m.group(1)) for m in rx.finditer(report))
    for m in _RECIPIENT_BLOCK.finditer(report):
        block = m.group(1)
        for line in block.split("\n"):
            line = line.strip()
            if not line:
                if found:
                    break
                continue
            am = _ADDR.search(line)
            if am and (line.startswith(("<", am.group(0)[:1])) or line.lower().startswith(("user ", "recipient", "to:"))
                       or len(line) < 120):
                found.append(_clean_addr(am.group(0)))
    found = [a for a in _uniq(found) if a and "@" in a]
    good = [a for a in found if a not in excluded and not _NOT_RECIPIENT_LOCAL.match(a.split("@")[0])]
    if good:
        return good
    # fallback: addresses in the report section that are nobody we know of
    rest = []
    for m in _ADDR.finditer(report):
        a = _clean_addr(m.group(0))
        before = report[max(0, m.start() - 12): m.start()].lower()
        if "from:" in before or "mail from" in before or "by " in before[-4:]:
            continue
        if a in excluded or _NOT_RECIPIENT_LOCAL.match(a.split("@")[0]):
            continue
        rest.append(a)
    rest = _uniq(rest)
    return rest if len(rest) <= 3 else []


def _is_machine_sender(mail: ParsedMail) -> bool:
    from_hdr = mail.header("From") or ""
    if _DAEMON_RX.search(from_hdr):
        return True
    if any(_DAEMON_RX.search(a.email) for a in mail.from_):
        return True
    rp = mail.header("Return-Path")
    return rp is not None and rp.strip() in ("<>", "")


def _auto_reply_markers(mail: ParsedMail) -> str:
    auto = (mail.header("Auto-Submitted") or "").strip().lower()
    if auto.startswith("auto-replied"):
        return f"Auto-Submitted: {auto}"
    for h in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"):
        if mail.header(h) is not None:
            return f"{h}: {mail.header(h)}"
    if re.match(r"^\s*(?:out\s+of\s+(?:the\s+)?office|auto(?:matic)?\s*-?\s*reply|autoreply|vacation|"
                r"abwesenheitsnotiz|automatische\s+antwort|r[ée]ponse\s+automatique)\b", mail.subject or "", re.I):
        return f"Subject: {mail.subject[:60]}"
    return ""


# ----------------------------------------------------------------------------- entry point

def _result(hit: bool, reason: str, **data) -> Verdict:
    base = {"kind": None, "recipients": [], "status": "", "permanent": False,
            "original_message_id": None, "format": None}
    base.update(data)
    return Verdict(NAME, hit, reason, base)


def check(mail: ParsedMail) -> Verdict:
    """Is ``mail`` a bounce? See the module docstring for ``data``."""
    msg = mail.message
    if msg is None:  # parser fallback: rebuild the tree ourselves
        try:
            msg = email.message_from_bytes(mail.raw or b"", policy=email.policy.compat32)
        except Exception:  # noqa: BLE001
            msg = None
    ctype = msg.get_content_type() if msg is not None else "text/plain"
    report_type = (msg.get_param("report-type") or "").lower() if msg is not None and ctype == "multipart/report" else ""
    if isinstance(report_type, tuple):  # RFC 2231 encoded parameter
        report_type = str(report_type[2]).lower()

    # (1) ARF and MDN reports are not bounces
    parts = list(_walk(msg)) if msg is not None else []
    ctypes = {p.get_content_type() for p in parts}
    if report_type == "feedback-report" or "message/feedback-report" in ctypes:
        return _result(False, f"Content-Type: multipart/report; report-type={report_type or 'feedback-report'} (ARF)",
                       kind="feedback-report")
    if report_type == "disposition-notification" or "message/disposition-notification" in ctypes:
        return _result(False, "Content-Type: multipart/report; report-type=disposition-notification (MDN)", kind="mdn")

    report_text = _report_text(mail)
    report, original = _split_original(report_text)
    orig_id = _original_message_id(mail, original, report_text)

    # (2) RFC 3464 delivery status notifications
    dsn_parts = [p for p in parts if p.get_content_type() in ("message/delivery-status", "message/global-delivery-status")]
    dsn_rcpts: list[dict[str, str]] = []
    for p in dsn_parts:
        dsn_rcpts.extend(_parse_dsn(_raw_part_text(p)))
    if dsn_parts and dsn_rcpts:
        failed = [r for r in dsn_rcpts if r["action"] in ("failed", "delayed") or
                  (not r["action"] and r["status"][:1] in ("4", "5"))]
        if not failed and all(r["action"] in ("delivered", "relayed", "expanded") for r in dsn_rcpts):
            return _result(False, "message/delivery-status: Action: " + ", ".join(_uniq(r["action"] for r in dsn_rcpts)),
                           kind="delivery-success", original_message_id=orig_id, format="rfc3464",
                           recipients=_uniq(r["recipient"] for r in dsn_rcpts))
        failed = failed or dsn_rcpts
        status = next((r["status"] for r in failed if r["status"]), "") or _status_of(report)
        permanent = any(r["action"] == "failed" for r in failed) or (
            not any(r["action"] == "delayed" for r in failed) and status.startswith("5"))
        recipients = _uniq(r["recipient"] for r in failed)
        if not recipients:
            recipients = _text_recipients(report, _excluded_addresses(mail, original))
        action = _uniq(r["action"] for r in failed if r["action"])
        return _result(True, f"message/delivery-status: Action: {', '.join(action) or '?'}; Status: {status or '?'}",
                       kind="bounce", recipients=recipients, status=status, permanent=permanent,
                       original_message_id=orig_id, format="rfc3464")

    # (3) non-standard bounces
    subject = mail.subject or ""
    subj_hit = bool(_SUBJECT_RX.search(subject)) and not _REPLY_PREFIX.match(subject)
    machine = _is_machine_sender(mail)
    failed_hdr = mail.header_all("X-Failed-Recipients")
    strong = next((name for name, rx, s in _BODY_RULES if s and rx.search(report)), None)
    weak = next((name for name, rx, s in _BODY_RULES if not s and rx.search(report)), None)
    is_report = ctype == "multipart/report" and report_type in ("", "delivery-status")
    auto = _auto_reply_markers(mail)

    reason = ""
    if failed_hdr:
        reason = f"X-Failed-Recipients: {failed_hdr[0][:60]}"
    elif machine and (subj_hit or strong or weak):
        reason = f"machine sender {(mail.header('From') or mail.header('Return-Path') or '').strip()[:50]}" + (
            f" + Subject: {subject[:50]}" if subj_hit else f" + {strong or weak} text")
    elif subj_hit and (strong or weak) and not auto:
        reason = f"Subject: {subject[:50]} + {strong or weak} text"
    elif strong and is_report:
        reason = f"multipart/report + {strong} text"
    if not reason or (auto and not failed_hdr and not strong):
        if auto:
            return _result(False, f"auto-reply, not a bounce ({auto})", kind="auto-reply")
        return _result(False, "")

    excluded = _excluded_addresses(mail, original)
    recipients = _uniq([_clean_addr(a) for v in failed_hdr for a in _ADDR.findall(v)])
    if not recipients:
        recipients = _text_recipients(report, excluded)
    status = _status_of(report)
    if not status:
        m = _SMTP_CODE.search(report)
        status = f"{m.group(1)}.0.0" if m else ""
    delayed = bool(_DELAY_TEXT.search(subject) or _DELAY_TEXT.search(report[:4000]))
    permanent = not delayed if not status else (status.startswith("5") and not delayed)
    if delayed and status.startswith("5"):
        permanent = False if re.search(r"\bdelay", subject, re.I) else True
    return _result(True, reason, kind="bounce", recipients=recipients, status=status, permanent=permanent,
                   original_message_id=orig_id, format=strong or weak or "subject")
