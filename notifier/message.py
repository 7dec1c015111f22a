"""Build well-formed outgoing mail: our own Message-ID, threading headers, UTF-8, and no
header injection from any value that came from a mail (CR, LF and other control characters
in subjects and names are turned into spaces before they reach a header)."""
from __future__ import annotations

import re
import uuid
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.utils import format_datetime

from gateway.store.models import utcnow

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
LOOP_HEADER = "X-Ticketgate-Loop"


def clean(value: str | None, limit: int = 900) -> str:
    """One line of header text: control characters (CR/LF included) become one space."""
    return " ".join(_CONTROL.sub(" ", value or "").split())[:limit]


def new_message_id(fqdn: str) -> str:
    return f"{uuid.uuid4().hex}@{fqdn}"


def address(email: str, name: str = "") -> HeaderAddress:
    email = clean(email, 320)
    local, _, domain = email.rpartition("@")
    return HeaderAddress(display_name=clean(name, 200), username=local, domain=domain)


def build(*, fqdn: str, from_addr: str, from_name: str = "", to: list[tuple[str, str]],
          subject: str, body: str, in_reply_to: str | None = None,
          references: list[str] | None = None, auto_submitted: bool | str = False,
          extra_headers: dict[str, str] | None = None) -> EmailMessage:
    """An outgoing mail. ``to`` is [(address, display name)]. ``auto_submitted`` adds the
    RFC 3834 headers every automatic answer must carry (True = auto-replied; or a value such
    as "auto-generated" for notifications)."""
    msg = EmailMessage()
    msg["From"] = address(from_addr, from_name)
    msg["To"] = [address(addr, name) for addr, name in to]
    msg["Subject"] = clean(subject)
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = f"<{new_message_id(fqdn)}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{clean(in_reply_to, 900)}>"
    refs = [clean(r, 300) for r in (references or []) if r][-20:]
    if refs:
        msg["References"] = " ".join(f"<{r}>" for r in refs)
    msg[LOOP_HEADER] = fqdn
    if auto_submitted:
        msg["Auto-Submitted"] = auto_submitted if isinstance(auto_submitted, str) \
            else "auto-replied"
        msg["X-Auto-Response-Suppress"] = "All"
        msg["Precedence"] = "bulk"
    for name, value in (extra_headers or {}).items():
        msg[clean(name, 70)] = clean(value)
    msg.set_content(body if body.endswith("\n") else body + "\n", charset="utf-8")
    return msg
