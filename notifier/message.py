"""Build well-formed outgoing mail: our own Message-ID, threading headers, UTF-8, and no
header injection from any value that came from a mail (CR, LF and other control characters
in subjects and names are turned into spaces before they reach a header)."""
from __future__ import annotations

import re
import uuid
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, getaddresses

import idna

from gateway.store.models import utcnow

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
LOOP_HEADER = "X-Ticketgate-Loop"


def clean(value: str | None, limit: int = 900) -> str:
    """One line of header text: control characters (CR/LF included) become one space."""
    return " ".join(_CONTROL.sub(" ", value or "").split())[:limit]


def new_message_id(fqdn: str) -> str:
    return f"{uuid.uuid4().hex}@{fqdn}"


def _ascii(text: str) -> bool:
    return text.isascii()


class BuildError(ValueError):
    """A value that cannot go into an outgoing mail (an address no encoding can carry)."""


def _unicode(text: str) -> str:
    """Text safe to encode as UTF-8: lone surrogates (raw 8-bit bytes kept by a
    ``surrogateescape`` decode) back to their bytes, decoded as UTF-8 or U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        text = _OTHER_SURROGATE.sub("\ufffd", text)
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


_OTHER_SURROGATE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


# Characters that cannot stand unquoted in the local part of an address we write.
_BAD_LOCAL = re.compile(r'[\s<>()\[\],;:"\\\ufffd]')


def domain_ascii(domain: str) -> str:
    """The domain as it goes on the wire: IDNA 2008 with UTS #46 mapping (``straße.de`` is
    ``xn--strae-oqa.de``; the stdlib "idna" codec is IDNA 2003 and would give
    ``strasse.de``, another domain). BuildError when it is no valid IDN."""
    if _ascii(domain):
        return domain
    try:   # UTS #46 maps the whole name (case, full-width dots); ASCII labels stay as they are
        mapped = idna.uts46_remap(domain, std3_rules=False, transitional=False)
        labels = [label if _ascii(label) else idna.alabel(label).decode("ascii")
                  for label in mapped.split(".")]
    except (idna.IDNAError, UnicodeError) as exc:
        raise BuildError(f"domain {domain!r} is not a valid IDN: {exc}") from None
    if any(not label for label in labels[:-1]):
        raise BuildError(f"domain {domain!r} has an empty label")
    return ".".join(labels)


def envelope_address(email: str) -> str:
    """One address for the header or the SMTP envelope: domain in A-labels; a non-ASCII
    local part stays UTF-8 (RFC 6531/6532: the mail then needs SMTPUTF8). BuildError for
    what no mail can carry (no ``@``, quoting characters or U+FFFD in the local part)."""
    email = _unicode(clean(email, 320))
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain or _BAD_LOCAL.search(local) \
            or _BAD_LOCAL.search(domain):
        raise BuildError(f"not a mail address we can write: {email!r}")
    return f"{local}@{domain_ascii(domain)}"


def _quoted_name(name: str) -> str:
    """A display name as RFC 5322 wants it: atoms as they are, else a quoted string;
    non-ASCII as RFC 2047 encoded words (never raw UTF-8, which only SMTPUTF8 carries)."""
    if not _ascii(name):
        return Header(name, "utf-8").encode(linesep=" ", maxlinelen=76)
    if re.fullmatch(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ .-]*", name) and ".." not in name:
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _address(email: str, name: str = "") -> str:
    """One RFC 5322 address: the name RFC 2047-encoded when needed, an IDN domain in
    A-labels (IDNA 2008/UTS #46), a UTF-8 local part kept (RFC 6532)."""
    email, name = envelope_address(email), _unicode(clean(name, 200))
    return f"{_quoted_name(name)} <{email}>" if name else email


def _msg_id(value: str | None, utf8: bool) -> str | None:
    """A message ID for In-Reply-To/References, or None when it cannot be written: one
    with spaces or brackets, or a non-ASCII one in a mail that is not sent as UTF-8 anyway
    (threading is a hint; our own Message-ID and the ticket hook still find the ticket)."""
    value = _unicode(clean(value, 900)).strip("<>")
    if not value or re.search(r"[\s<>\ufffd]", value) or (not utf8 and not _ascii(value)):
        return None
    return value


def _text(value: str):
    value = _unicode(value)
    return value if _ascii(value) else Header(value, "utf-8")


class OutgoingMessage(MIMEText):
    """A text/plain mail built with the compat32 classes; get_content() as EmailMessage has."""

    def get_content(self) -> str:
        return body_text(self)


_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP


def build(*, fqdn: str, from_addr: str, from_name: str = "", to: list[tuple[str, str]],
          subject: str, body: str, in_reply_to: str | None = None,
          references: list[str] | None = None, auto_submitted: bool | str = False,
          extra_headers: dict[str, str] | None = None) -> Message:
    """An outgoing mail. ``to`` is [(address, display name)]. ``auto_submitted`` adds the
    RFC 3834 headers every automatic answer must carry (True = auto-replied; or a value such
    as "auto-generated" for notifications).

    Built with the compat32 classes (MIMEText + Header): about ten times cheaper than
    EmailMessage's header registry, which mattered because every mail makes several of
    these. Every value is made one line by ``clean`` before it gets here, so nothing that came
    from a mail can add a header.

    Raises BuildError for an address no mail can carry. A non-ASCII local part is written
    as UTF-8 (the mail then needs SMTPUTF8: ``needs_smtputf8``); a message ID that cannot
    be written is left out of In-Reply-To/References."""
    text = _unicode(body).replace("\r\n", "\n").replace("\r", "\n")
    text = text if text.endswith("\n") else text + "\n"
    plain = _ascii(text) and max(map(len, text.split("\n"))) <= 900
    sender = _address(from_addr, from_name)
    recipients = ", ".join(_address(addr, name) for addr, name in to)
    utf8 = not (_ascii(sender) and _ascii(recipients))   # a UTF-8 local part: RFC 6532
    msg = OutgoingMessage(text, "plain", "us-ascii" if plain else _UTF8_QP)
    msg["From"] = sender
    msg["To"] = recipients
    msg["Subject"] = _text(clean(subject))
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = f"<{new_message_id(fqdn)}>"
    parent = _msg_id(in_reply_to, utf8)
    if parent:
        msg["In-Reply-To"] = f"<{parent}>"
    refs = [r for r in (_msg_id(r, utf8) for r in (references or [])[-40:]) if r][-20:]
    if refs:
        msg["References"] = " ".join(f"<{r}>" for r in refs)
    msg[LOOP_HEADER] = fqdn
    if auto_submitted:
        msg["Auto-Submitted"] = auto_submitted if isinstance(auto_submitted, str) \
            else "auto-replied"
        msg["X-Auto-Response-Suppress"] = "All"
        msg["Precedence"] = "bulk"
    for name, value in (extra_headers or {}).items():
        msg[clean(name, 70)] = _text(clean(value))
    return msg


_WIRE = compat32.clone(linesep="\r\n")


def _fold(value: str, limit: int = 900) -> str:
    """Fold a long header value at spaces (RFC 5322: lines of at most 998 octets)."""
    if len(value) <= limit:
        return value
    out, line = [], ""
    for word in value.split(" "):
        if line and len(line) + 1 + len(word) > limit:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    out.append(line)
    return "\r\n ".join(out)


def wire_bytes(msg: Message) -> bytes:
    """The mail as sent, CRLF line ends. A mail from ``build`` is written directly (its
    headers are one-line and already encoded; about 10x faster than the generator);
    anything else goes through the stdlib generator."""
    if not isinstance(msg, OutgoingMessage):
        return msg.as_bytes(policy=_WIRE if msg.policy is compat32 else
                            msg.policy.clone(linesep="\r\n"))
    head = []
    for name, value in msg.items():
        text = value.encode(linesep="\r\n") if isinstance(value, Header) else _fold(str(value))
        head.append(f"{name}: {text}")
    body = msg.get_payload().replace("\r\n", "\n").replace("\n", "\r\n")
    # ASCII unless an address has a UTF-8 local part (RFC 6532; sent with SMTPUTF8)
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode("utf-8")


def needs_smtputf8(raw: bytes, *addresses: str) -> bool:
    """Whether a mail can only go out with SMTPUTF8 (RFC 6531): UTF-8 in its envelope
    addresses or its headers."""
    return not (all(map(_ascii, addresses)) and raw.isascii())


def body_text(msg: Message) -> str:
    payload = msg.get_payload(decode=True) or b""
    return payload.decode(msg.get_content_charset() or "utf-8", "replace")


def addresses(msg: Message, header: str) -> list[str]:
    return [addr for _, addr in getaddresses([str(v) for v in msg.get_all(header, [])]) if addr]
