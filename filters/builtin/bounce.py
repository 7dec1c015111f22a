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
from gateway.parts import Prefilter
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
    r"^\s*(?:\[[^\]]{1,30}\]\s*)?(?:"
    r"(?:e-?mail\s+|message\s+|mail\s+)?delivery\s+(?:failure|problem|failed)|warning:\s+message|"
    r"your\s+message\s+to\s+.{1,100}\s+(?:could\s+not|couldn't|was\s+not|has\s+not)\s+be(?:en)?\s+delivered|"
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
    ("exim", r"(?:This message was|This is an automated message) created (?:automatically )?by mail delivery\s+software", True),
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
    ("generic", r"(?:could\s+not|couldn't|cannot|can't)\s+be\s+(?:delivered|reached)|(?:was|were|has|have)\s+not\s+(?:yet\s+)?(?:been\s+)?delivered|"
                r"mail\s+has\s+been\s+returned|returned\s+mail\s+follows|was\s+automatically\s+rejected|"
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
    r"will\s+(?:continue\s+to|keep)\s+try|will\s+continue\s+to\s+be\s+attempted|"
    r"delivery\s+attempts\s+will\s+continue|has\s+been\s+delayed|not\s+yet\s+been\s+delivered|"
    r"delivery\s+(?:is\s+)?delayed|\(delay\)|temporary\s+(?:failure|error|problem)|"
    r"warning:\s+message\s|this\s+is\s+a\s+warning|retry\s+(?:timeout|time)\s+not\s+reached", re.I)
# Cheap reason classes (Sisimai's names) from diagnostic text, with the status they imply when
# the bounce carries no enhanced status code of its own.
_REASONS: list[tuple[str, str, re.Pattern[str]]] = [(n, st, re.compile(rx, re.I)) for n, st, rx in [
    ("mailboxfull", "5.2.2", r"mailbox\s+(?:is\s+)?full|quota\s+exceeded|over\s*quota|exceeded\s+(?:storage|quota)|"
                              r"insufficient\s+(?:disk\s+)?(?:space|storage)|mailbox\s+size\s+limit"),
    ("mesgtoobig", "5.3.4", r"message\s+(?:is\s+)?too\s+(?:large|big)|exceeds?\s+(?:the\s+)?(?:maximum\s+)?(?:message\s+)?size|"
                             r"size\s+(?:limit\s+)?exceeded|exceeded\s+maximum\s+inbound\s+message\s+size"),
    ("hostunknown", "5.1.2", r"unrouteable\s+(?:mail\s+)?domain|host\s+(?:or\s+domain\s+name\s+)?(?:not\s+found|unknown)|"
                              r"domain\s+(?:not\s+found|does\s+not\s+exist)|name\s+service\s+error|no\s+mx\s+record|"
                              r"unknown\s+host|host\s+name\s+lookup\s+failure"),
    ("userunknown", "5.1.1", r"user\s+unknown|unknown\s+(?:user|recipient|address|local\s+part)|no\s+such\s+(?:user|mailbox|recipient|address)|"
                              r"(?:user|mailbox|address|recipient|account)\s+(?:does\s+not|doesn't)\s+exist|"
                              r"invalid\s+(?:recipient|mailbox|address)|not\s+listed\s+in\s+(?:domino\s+)?directory|"
                              r"recipient\s+not\s+found|mailbox\s+(?:not\s+found|unavailable)|not\s+our\s+customer|"
                              r"email\s+account\s+that\s+you\s+tried\s+to\s+reach\s+does\s+not\s+exist"),
    ("norelaying", "5.7.1", r"relay(?:ing)?\s+(?:access\s+)?(?:denied|not\s+permitted|prohibited)|unable\s+to\s+relay"),
    ("expired", "4.4.7", r"retry\s+time(?:out)?\s+(?:exceeded|reached)|too\s+long\s+in\s+(?:the\s+)?queue|"
                          r"been\s+in\s+the\s+queue\s+too\s+long|cannot\s+send\s+message\s+for\s+\d+\s+days|"
                          r"delivery\s+time\s+expired|message\s+expired"),
    ("spamdetected", "5.7.1", r"\bspam\b|junk\s+mail"),
    ("blocked", "5.7.1", r"blacklist|blocklist|black\s+list|\bblocked\b|access\s+denied|rejected\s+by\s+policy"),
]]
_STATUS_REASON = {"5.1.1": "userunknown", "5.1.0": "userunknown", "5.1.2": "hostunknown", "5.2.2": "mailboxfull",
                  "4.2.2": "mailboxfull", "5.2.1": "suspend", "5.3.4": "mesgtoobig", "5.2.3": "mesgtoobig",
                  "4.4.7": "expired", "5.4.7": "expired", "5.7.1": "blocked", "5.1.6": "hasmoved"}
_SUCCESS_ACTIONS = ("delivered", "relayed", "expanded", "deliverable")
_NOT_RECIPIENT_LOCAL = re.compile(r"^(?:mailer[-_.]?daemon|postmaster|post_master|root|abuse|no-?reply)$", re.I)


# ----------------------------------------------------------------------------- helpers

def _part_text(part: Message) -> str:
    """Decoded text of a non-multipart part, never raising."""
    try:
        payload = part.get_payload(decode=True)
        if payload is None:
            raw = part.get_payload()
            return raw if isinstance(raw, str) else ""
        # bounded: the stdlib parameter parser is quadratic (a 1 MB Content-Type took 20 s)
        charset = (len(str(part.get("Content-Type", ""))) < 16_000
                   and part.get_content_charset()) or "utf-8"
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
    return re.sub(r"^.*\bsmtp=", "", addr)  # X.400-ish "dda:SMTP=user@host" (Exchange)


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
        # Original-Recipient is the address the sender wrote (ours); Final-Recipient may be
        # an alias expansion or a forwarding target.
        rcpt = _addr_field(block.get("original-recipient", "")) or _addr_field(block.get("final-recipient", ""))
        if not rcpt and "action" not in block:
            continue
        diag = block.get("diagnostic-code", "")
        raw_status = block.get("status", "")
        status = _status_of(raw_status) or _status_of(diag)
        if not status:
            m = re.match(r"\s*([245])\d\d\b", raw_status) or re.search(r"\b([45])\d\d\b", diag)
            status = f"{m.group(1)}.0.0" if m else ""
        words = block.get("action", "").lower().split()
        action = words[0] if words else ""
        if action.startswith("fail"):
            action = "failed"
        elif action.startswith("delay"):
            action = "delayed"
        out.append({"recipient": rcpt, "action": action, "status": status, "diagnostic": diag})
    return out


# ----------------------------------------------------------------------------- original message

def _original_message_id(mail: ParsedMail, text_original: str, report_text: str) -> str | None:
    own = (mail.message_id or "").lower()
    msg = mail.message
    candidates: list[str] = []  # from attached parts: trusted even when equal to our own id
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
    for cand in candidates:
        mid = cand.strip().strip("<>").strip()
        if mid and "@" in mid:
            return mid
    quoted = [m.group(1) for m in _MSGID_LINE.finditer(text_original)]
    quoted += [m.group(1) for m in _MSGID_LINE.finditer(report_text)]
    for cand in quoted:
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


_BARE_BLOCK = re.compile(
    r"following\s+recipients?\s+could\s+not\s+be\s+delivered[^\n]*(?:\n[^\n]*?)?:[ \t]*\n"
    r"((?:[ \t]+[A-Za-z0-9._-]{1,64}[ \t]*\n){1,20})", re.I)


def _text_recipients(report: str, excluded: set[str], domain: str = "") -> list[str]:
    found: list[str] = []
    for rx in _RECIPIENT_LINE:
        found.extend(_clean_addr(m.group(1)) for m in rx.finditer(report))
    if domain:
        # A daemon listing bare local names (AOL's screen names): they are in its own domain.
        for m in _BARE_BLOCK.finditer(report):
            found.extend(f"{name.strip().lower()}@{domain}" for name in m.group(1).split("\n")
                         if name.strip())
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

def _mdn_rejection(parts: list[Message]) -> Verdict | None:
    """A Sieve ``reject`` answered with an MDN (RFC 5429 2.1: automatic-action, disposition
    "deleted"; Dovecot and others) is the recipient refusing the mail: a bounce."""
    for part in parts:
        if part.get_content_type() != "message/disposition-notification":
            continue
        block = next(iter(_dsn_blocks(_raw_part_text(part))), {})
        disposition = block.get("disposition", "").lower()
        if "automatic-action" not in disposition or not re.search(r";\s*deleted\b", disposition):
            continue
        rcpt = _addr_field(block.get("original-recipient", "")) or _addr_field(block.get("final-recipient", ""))
        text = " ".join(_part_text(p) for p in parts if p.get_content_type() == "text/plain")
        why, status = _reason_of(text, _status_of(text) or "5.7.1")
        return _result(True, f"message/disposition-notification: Disposition: {disposition[:60]} (RFC 5429 reject)",
                       kind="bounce", recipients=[rcpt] if rcpt else [], status=status, permanent=True,
                       reason=why, format="rfc5429")
    return None


def _reason_of(text: str, status: str) -> tuple[str, str]:
    """(reason class, status) from diagnostic text; the given status wins when present."""
    for name, implied, rx in _REASONS:
        if rx.search(text or ""):
            return name, status or implied
    return _STATUS_REASON.get(status, ""), status


def _result(hit: bool, explanation: str, **data) -> Verdict:
    base = {"kind": None, "recipients": [], "status": "", "permanent": False, "reason": "",
            "original_message_id": None, "format": None}
    base.update(data)
    return Verdict(NAME, hit, explanation, base)


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
        rejected = _mdn_rejection(parts)
        if rejected is not None:
            return rejected
        return _result(False, "Content-Type: multipart/report; report-type=disposition-notification (MDN)", kind="mdn")

    report_text = _report_text(mail)
    report, original = _split_original(report_text)
    orig_id = _original_message_id(mail, original, report_text)

    # (2) RFC 3464 delivery status notifications
    dsn_types = ("message/delivery-status", "message/global-delivery-status")
    dsn_parts = [p for p in parts if p.get_content_type() in dsn_types]
    subject = mail.subject or ""
    subj_hit = bool(_SUBJECT_RX.search(subject)) and not _REPLY_PREFIX.match(subject)
    machine = _is_machine_sender(mail)
    if not dsn_parts and msg is not None and (machine or subj_hit):
        # some gateways (Exchange, list software) wrap the real DSN in a message/rfc822
        dsn_parts = [p for p in _walk(msg, into_rfc822=True) if p.get_content_type() in dsn_types]
    dsn_rcpts: list[dict[str, str]] = []
    for p in dsn_parts:
        dsn_rcpts.extend(_parse_dsn(_raw_part_text(p)))
    if dsn_parts and dsn_rcpts:
        failed = [r for r in dsn_rcpts if r["action"] in ("failed", "delayed") or
                  (not r["action"] and r["status"][:1] in ("4", "5"))]
        if not failed and all(r["action"] in _SUCCESS_ACTIONS for r in dsn_rcpts):
            return _result(False, "message/delivery-status: Action: " + ", ".join(_uniq(r["action"] for r in dsn_rcpts)),
                           kind="delivery-success", original_message_id=orig_id, format="rfc3464",
                           recipients=_uniq(r["recipient"] for r in dsn_rcpts))
        failed = failed or dsn_rcpts
        status = next((r["status"] for r in failed if r["status"]), "") or _status_of(report)
        permanent = any(r["action"] == "failed" for r in failed) or (
            not any(r["action"] == "delayed" for r in failed) and status.startswith("5"))
        why, status = _reason_of(" ".join(r["diagnostic"] for r in failed) or report, status)
        recipients = _uniq(r["recipient"] for r in failed)
        if not recipients:
            recipients = _text_recipients(report, _excluded_addresses(mail, original))
        action = _uniq(r["action"] for r in failed if r["action"])
        return _result(True, f"message/delivery-status: Action: {', '.join(action) or '?'}; Status: {status or '?'}",
                       kind="bounce", recipients=recipients, status=status, permanent=permanent,
                       reason=why, original_message_id=orig_id, format="rfc3464")

    # (3) non-standard bounces
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
    # Many MTAs mark bounces "Auto-Submitted: auto-replied" too: a vacation marker only vetoes
    # when neither a daemon sender with a bounce subject nor an MTA phrase says "bounce".
    if not reason or (auto and not failed_hdr and not strong and not (machine and subj_hit)):
        if auto:
            return _result(False, f"auto-reply, not a bounce ({auto})", kind="auto-reply")
        return _result(False, "")

    excluded = _excluded_addresses(mail, original)
    recipients = _uniq([_clean_addr(a) for v in failed_hdr for a in _ADDR.findall(v)])
    if not recipients:
        domain = mail.sender.email.rpartition("@")[2] if machine and mail.sender else ""
        recipients = _text_recipients(report, excluded, domain)
    status = _status_of(report)
    why, status = _reason_of(report, status)
    if not status:
        m = _SMTP_CODE.search(report)
        status = f"{m.group(1)}.0.0" if m else ""
    # a text bounce is final unless it says it is a delay warning
    permanent = not (_DELAY_TEXT.search(subject) or _DELAY_TEXT.search(report[:4000]))
    return _result(True, reason, kind="bounce", recipients=recipients, status=status, permanent=permanent,
                   reason=why, original_message_id=orig_id, format=strong or weak or "subject")


PREFILTER = Prefilter(NAME, lambda mail, envelope, settings, config: check(mail),
                      doc="delivery status notifications and other bounces of our mail",
                      silences_auto_response=True)
