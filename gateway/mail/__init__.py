"""Inbound mail as plain Python values: ``model`` (ParsedMail, Address, Attachment), ``parser``
(bytes -> ParsedMail, never raises on malformed input), ``payload`` (part payloads: enclosed
messages, base64, quoted-printable, uuencode), ``text`` (charsets, RFC 2047 words, HTML to
text)."""
from gateway.mail.model import Address, Attachment, ParsedMail
from gateway.mail.parser import parse_bytes as parse

__all__ = ["Address", "Attachment", "ParsedMail", "parse"]
