"""The parsed-mail model: one inbound RFC 5322 message turned into plain Python values.

Parsing never raises on bad input: defects are collected in ``ParsedMail.defects`` and the
mail is still usable (a wrong or unknown charset falls back to a safe decoding).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage


@dataclass(frozen=True)
class Address:
    name: str
    email: str  # lower-cased address; IDN domains as given (Unicode)

    def __str__(self) -> str:
        """For display and storage (Unicode kept; not for putting into outgoing headers)."""
        if not self.name:
            return self.email
        name = self.name.replace("\\", "\\\\").replace('"', '\\"')
        name = " ".join(name.split())  # no CR/LF or tabs from a hostile header
        if any(c in name for c in '()<>[]:;@,."\\'):
            name = f'"{name}"'
        return f"{name} <{self.email}>"


@dataclass
class Attachment:
    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None
    disposition: str = "attachment"  # "attachment" or "inline"


@dataclass
class ParsedMail:
    raw: bytes
    message_id: str | None = None          # without angle brackets
    in_reply_to: list[str] = field(default_factory=list)   # Message-IDs, no brackets
    references: list[str] = field(default_factory=list)
    subject: str = ""
    from_: list[Address] = field(default_factory=list)
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    reply_to: list[Address] = field(default_factory=list)
    date: datetime | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)  # decoded (name, value), in order
    body: str = ""                 # the text body (from HTML when the mail has no text part)
    body_html: str | None = None
    content_type: str = "text/plain"  # of the part the body came from; "" if no text part
    charset: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    # The stdlib MIME tree, for detectors: EmailMessage objects under the compat32 policy, so
    # header values are raw strings (decoded ones are in ``headers``) and get_content() is not
    # available; walk(), iter_parts() and get_payload(decode=True) work.
    message: EmailMessage | None = field(default=None, repr=False)

    @property
    def sender(self) -> Address | None:
        return self.from_[0] if self.from_ else None

    def header(self, name: str) -> str | None:
        """First value of header ``name`` (case-insensitive), decoded; None when absent."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]
