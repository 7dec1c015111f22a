"""Turn raw bytes into a ParsedMail (stdlib ``email`` with ``policy.default``). Minimal first cut."""
from __future__ import annotations

import email
import email.policy
import email.utils
import re

from gateway.mail import Address, Attachment, ParsedMail

_MSGID = re.compile(r"<([^<>\s]+)>")


def _ids(value: str | None) -> list[str]:
    return _MSGID.findall(value or "")


def _addresses(values: list[str]) -> list[Address]:
    out = []
    for name, addr in email.utils.getaddresses(values):
        if addr:
            out.append(Address(name=name, email=addr.lower()))
    return out


def parse_bytes(raw: bytes) -> ParsedMail:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    headers = []
    for k, v in msg.raw_items():
        try:
            headers.append((k, str(msg.policy.header_factory(k, v))))
        except Exception:
            headers.append((k, str(v)))
    pm = ParsedMail(raw=raw, message=msg, headers=headers)
    mid = _ids(pm.header("Message-ID"))
    pm.message_id = mid[0] if mid else None
    pm.in_reply_to = _ids(pm.header("In-Reply-To"))
    pm.references = _ids(" ".join(pm.header_all("References")))
    pm.subject = (pm.header("Subject") or "").strip()
    pm.from_ = _addresses(pm.header_all("From"))
    pm.to = _addresses(pm.header_all("To"))
    pm.cc = _addresses(pm.header_all("Cc"))
    pm.reply_to = _addresses(pm.header_all("Reply-To"))
    try:
        body = msg.get_body(("plain", "html"))
        if body is not None:
            pm.content_type = body.get_content_type()
            pm.charset = body.get_content_charset() or ""
            pm.body = body.get_content()
    except Exception as exc:  # noqa: BLE001 - parsing must never raise
        pm.defects.append(f"body: {exc}")
    try:
        for part in msg.iter_attachments():
            pm.attachments.append(Attachment(
                filename=part.get_filename() or "",
                content_type=part.get_content_type(),
                data=part.get_payload(decode=True) or b"",
                content_id=(part.get("Content-ID") or "").strip("<>") or None,
                disposition=part.get_content_disposition() or "attachment",
            ))
    except Exception as exc:  # noqa: BLE001
        pm.defects.append(f"attachments: {exc}")
    pm.defects.extend(str(d) for d in msg.defects)
    return pm
