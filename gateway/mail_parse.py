"""Turn raw bytes into a ParsedMail. Never raises, on any input.

Parser decision (measured with ``bench/parse.py`` on /work/shared/corpus, 793 mails):

    stdlib ``email`` (BytesParser, policy.default tree) + our own tolerant decoding layer
    (this module + gateway/mail_text.py) was chosen over ``mailparser.parse_from_bytes``.
    NUMBERS_PLACEHOLDER

``policy.default`` vs ``compat32`` for the tree makes no measurable difference here because
header objects are only built lazily and this module decodes raw header values itself; the
``policy.default`` tree (``EmailMessage``) is kept in ``ParsedMail.message`` for detectors.
mail-parser itself wraps the stdlib parser (compat32) and adds eager work (JSON-able dicts,
defect regex scanning), so it cannot be faster, and it neither keeps the RFC 2231/2047
fallbacks we need nor exposes inline/Content-ID information in a usable way.

Design: the stdlib feed parser builds the MIME tree; everything that can go wrong afterwards
(charsets, RFC 2047/2231 decoding, addresses, dates, body choice, attachment names) is done here
from *raw* header values with explicit fallbacks, and every fallback notes a human-readable
defect. The tree is walked iteratively with a depth guard; a RecursionError inside the stdlib
parser (about 1000 nested multiparts) is answered by re-parsing with the deep levels flattened.
"""
from __future__ import annotations

import binascii
import email
import email.message
import email.parser
import email.policy
import email.utils
import mimetypes
import re
from datetime import timezone
from email.generator import BytesGenerator
from io import BytesIO

from gateway.mail import Address, Attachment, ParsedMail
from gateway.mail_text import (decode_bytes, decode_header_value, decode_words, fix_8bit,
                               html_to_text, normalize_charset)

MAX_DEPTH = 50               # MIME nesting walked; deeper parts are kept as opaque attachments
MAX_PARTS = 5000             # parts walked per mail
_FLATTEN_AFTER = (100, 20)   # re-parse attempts after a RecursionError in the stdlib parser

# The tree policy: compat32 (see module docstring). The tree is built with the EmailMessage
# class so walk()/iter_parts()/get_body() work for detectors; header values stay raw strings.
TREE_POLICY = email.policy.compat32

_MSGID = re.compile(r"<([^<>\s]+)>")
_CT_MULTIPART = re.compile(rb"(content-type:[ \t]*(?:\r?\n[ \t]+)?)multipart/", re.I)
_UU_BEGIN = re.compile(r"^begin [0-7]{3,4} ([^\r\n]+)\r?\n", re.M)
_UU_END = re.compile(r"^end[ \t]*\r?$", re.M)

_EXT_OVERRIDES = {
    "text/plain": ".txt", "text/html": ".html", "image/jpeg": ".jpg", "message/rfc822": ".eml",
    "message/delivery-status": ".txt", "message/disposition-notification": ".txt",
    "text/rfc822-headers": ".txt", "message/global": ".eml", "application/octet-stream": ".bin",
    "text/calendar": ".ics", "application/pkcs7-signature": ".p7s",
    "application/pkcs7-mime": ".p7m", "application/pgp-signature": ".asc",
    "application/ms-tnef": ".dat", "text/x-vcard": ".vcf", "text/vcard": ".vcf",
}


# --- small helpers --------------------------------------------------------------------------

def _ids(value: str | None) -> list[str]:
    return _MSGID.findall(value or "")


def _raw_header(part: email.message.Message, name: str) -> str | None:
    lname = name.lower()
    for k, v in part.raw_items():
        if k.lower() == lname:
            return v if isinstance(v, str) else str(v)
    return None


def _params(raw: str | None) -> tuple[str, dict[str, str], list[str]]:
    """(lower-case value, params, problems) of a Content-Type/-Disposition raw header value.

    RFC 2231 (continuations, charsets) is handled by the compat32 parameter code, which only
    needs a plain Message shim holding the raw header."""
    if not raw:
        return "", {}, []
    raw = re.sub(r"\r?\n(?=[ \t])", "", raw)
    problems: list[str] = []
    shim = email.message.Message()
    shim._headers = [("X", raw)]  # noqa: SLF001 - avoid header validation, raw value as is
    try:
        items = shim.get_params(header="X", failobj=[]) or []
    except Exception as exc:  # noqa: BLE001
        problems.append(f"unparsable parameters: {exc}")
        items = []
    value = ""
    params: dict[str, str] = {}
    for i, (k, v) in enumerate(items):
        if i == 0:
            value = (k or "").strip().lower()
            continue
        key = (k or "").strip().lower()
        if not key or key in params:
            continue
        if isinstance(v, tuple):  # RFC 2231: (charset, language, value) with %-decoded bytes
            cs, _lang, text = v
            data = (text or "").encode("latin-1", "surrogateescape") if isinstance(text, str) \
                else bytes(text or b"")
            v, _ = decode_bytes(data, cs or "utf-8", problems, f"parameter {key}")
        else:
            v = email.utils.unquote(v or "")
        params[key] = v
    if not value:
        value = raw.split(";", 1)[0].strip().lower()
    return value, params, problems


def _content_type(part) -> tuple[str, dict[str, str], list[str]]:
    ctype, params, problems = _params(_raw_header(part, "Content-Type"))
    ctype = ctype.strip("\"' ")
    if not ctype or "/" not in ctype or " " in ctype:
        if ctype:
            problems.append(f"invalid Content-Type {ctype[:60]!r}, treated as default")
        ctype = part.get_default_type()
    return ctype, params, problems


def _clean_filename(name: str) -> str:
    name = re.sub(r"[\r\n\t\x00-\x1f\x7f]+", " ", name)
    name = name.replace("/", "_").replace("\\", "_")
    name = re.sub(r" {2,}", " ", name).strip(" .") if name.strip(" .") else ""
    return name[:255]


def _generated_name(ctype: str, n: int) -> str:
    ext = _EXT_OVERRIDES.get(ctype) or mimetypes.guess_extension(ctype, strict=False) or ".bin"
    return f"file-{n}{ext}"


def _address_list(values: list[str], charset: str | None, defects: list[str],
                  what: str) -> list[Address]:
    out: list[Address] = []
    for value in values:
        value = fix_8bit(value, charset, defects, what)
        value = re.sub(r"\r?\n(?=[ \t])", "", value).replace("\r", " ").replace("\n", " ")
        try:
            pairs = email.utils.getaddresses([value])
        except Exception as exc:  # noqa: BLE001
            defects.append(f"{what}: unparsable address list ({exc})")
            pairs = []
        for name, addr in pairs:
            addr = (addr or "").strip().strip("<>").strip()
            if ":" in addr and "@" in addr.split(":", 1)[1]:  # group syntax left-over
                addr = addr.split(":", 1)[1].strip()
            if not addr:
                continue
            name = decode_words(name or "", defects, what).strip()
            name = re.sub(r"\s+", " ", name).strip().strip("\"'").strip()
            if name.lower() == addr.lower():
                name = ""
            out.append(Address(name=name, email=addr.lower()))
    return out


def _describe_defect(where: str, d) -> str:
    kind = type(d).__name__
    text = str(d) or (type(d).__doc__ or "").strip().split("\n")[0]
    text = text.strip() or kind
    return f"{where}: {kind}: {text}" if where else f"{kind}: {text}"


def _message_bytes(part) -> bytes:
    """Bytes of an attached message (message/rfc822 payload) for storing it as .eml."""
    payload = part.get_payload()
    sub = payload[0] if isinstance(payload, list) and payload else None
    if sub is None:
        data = part.get_payload(decode=True)
        return data if isinstance(data, bytes) else b""
    try:
        buf = BytesIO()
        gen = BytesGenerator(buf, mangle_from_=False, policy=email.policy.compat32)
        gen.flatten(sub, linesep="\n")
        return buf.getvalue()
    except Exception:  # noqa: BLE001
        try:
            return sub.as_string(policy=email.policy.compat32).encode("utf-8", "surrogateescape")
        except Exception:  # noqa: BLE001
            return b""


def _payload_bytes(part, problems: list[str]) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception as exc:  # noqa: BLE001
        problems.append(f"undecodable payload ({exc})")
        data = None
    if data is None:
        raw = part.get_payload()
        if isinstance(raw, str):
            data = raw.encode("ascii", "surrogateescape")
        else:
            data = b""
    return data


def _uudecode(text: str, problems: list[str]) -> tuple[str, list[tuple[str, bytes]]]:
    """Extract ``begin 644 name`` ... ``end`` blocks from a text body."""
    files: list[tuple[str, bytes]] = []
    if "begin " not in text:
        return text, files
    out: list[str] = []
    pos = 0
    for m in list(_UU_BEGIN.finditer(text)):
        if m.start() < pos:
            continue
        end = _UU_END.search(text, m.end())
        if not end:
            break
        data = bytearray()
        ok = True
        for line in text[m.end():end.start()].splitlines():
            if not line.strip():
                continue
            try:
                data += binascii.a2b_uu(line)
            except binascii.Error:
                try:  # broken encoders: decode as many bytes as the length char says
                    nbytes = (((ord(line[0]) - 32) & 63) * 4 + 5) // 3
                    data += binascii.a2b_uu(line[:nbytes])
                except (binascii.Error, IndexError):
                    ok = False
        if not ok:
            problems.append(f"uuencoded file {m.group(1)!r}: corrupt lines skipped")
        files.append((m.group(1).strip(), bytes(data)))
        out.append(text[pos:m.start()])
        pos = end.end()
    out.append(text[pos:])
    return "".join(out), files


# --- parse ----------------------------------------------------------------------------------

def _from_bytes(raw: bytes, headersonly: bool = False) -> email.message.EmailMessage:
    return email.parser.BytesParser(_class=email.message.EmailMessage, policy=TREE_POLICY
                                    ).parsebytes(raw, headersonly=headersonly)


def _parse_tree(raw: bytes, defects: list[str]) -> email.message.EmailMessage:
    try:
        return _from_bytes(raw)
    except RecursionError:
        pass
    except Exception as exc:  # noqa: BLE001 - e.g. policy.default header bugs
        defects.append(f"stdlib parser failed ({type(exc).__name__}: {exc}); "
                       "re-parsed with compat32")
        return email.parser.BytesParser(_class=email.message.EmailMessage,
                                        policy=email.policy.compat32).parsebytes(raw)
    for keep in _FLATTEN_AFTER:
        count = 0

        def flatten(m, keep=keep):
            nonlocal count
            count += 1
            return m.group(0) if count <= keep else m.group(1) + b"application/x-flattened-"

        try:
            msg = _from_bytes(_CT_MULTIPART.sub(flatten, raw))
        except RecursionError:
            continue
        defects.append(f"MIME nesting too deep for the parser: multiparts after the first "
                       f"{keep} kept as opaque parts")
        return msg
    defects.append("MIME nesting too deep for the parser: body not parsed")
    return _from_bytes(raw, headersonly=True)


def parse_bytes(raw: bytes) -> ParsedMail:
    """Parse raw bytes into a ParsedMail. Never raises."""
    try:
        if not isinstance(raw, bytes):
            raw = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
    except Exception:  # noqa: BLE001
        raw = b""
    try:
        return _parse(raw)
    except Exception as exc:  # noqa: BLE001 - last resort: never raise
        pm = ParsedMail(raw=raw)
        pm.defects.append(f"parser failure, mail kept raw: {type(exc).__name__}: {exc}")
        try:
            pm.body, _ = decode_bytes(raw.partition(b"\n\n")[2] or raw, None, None)
        except Exception:  # noqa: BLE001
            pass
        return pm


def _parse(raw: bytes) -> ParsedMail:
    defects: list[str] = []
    msg = _parse_tree(raw, defects)
    pm = ParsedMail(raw=raw, message=msg)
    if not raw.strip():
        defects.append("empty message")

    top_ctype, top_params, _ = _content_type(msg)
    hcharset = top_params.get("charset")  # best guess for 8-bit header bytes

    for k, v in msg.raw_items():
        name = fix_8bit(k, None, None, "header name") if not k.isascii() else k
        pm.headers.append((name, decode_header_value(v, hcharset, defects, f"header {name}")))

    mid = _ids(pm.header("Message-ID"))
    if mid:
        pm.message_id = mid[0]
    elif (pm.header("Message-ID") or "").strip() and " " not in pm.header("Message-ID").strip():
        pm.message_id = pm.header("Message-ID").strip()
    pm.in_reply_to = _ids(" ".join(pm.header_all("In-Reply-To")))
    pm.references = _ids(" ".join(pm.header_all("References")))
    pm.subject = pm.header("Subject") or ""

    def raw_all(name: str) -> list[str]:
        lname = name.lower()
        return [str(v) for k, v in msg.raw_items() if k.lower() == lname]

    pm.from_ = _address_list(raw_all("From"), hcharset, defects, "From")
    pm.to = _address_list(raw_all("To"), hcharset, defects, "To")
    pm.cc = _address_list(raw_all("Cc"), hcharset, defects, "Cc")
    pm.reply_to = _address_list(raw_all("Reply-To"), hcharset, defects, "Reply-To")

    date = pm.header("Date")
    if date:
        try:
            dt = email.utils.parsedate_to_datetime(date)
            pm.date = dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
        except Exception:  # noqa: BLE001
            defects.append(f"Date: unparsable {date[:60]!r}")

    for d in msg.defects:
        defects.append(_describe_defect("", d))
    _walk(msg, pm, defects)
    pm.defects = defects
    return pm


def _walk(msg, pm: ParsedMail, defects: list[str]) -> None:
    """Iterative walk: choose the body, collect attachments."""
    # Each leaf: (part, ctype, params, disposition, filename, cid, in_alternative, path)
    leaves = []
    stack = [(msg, 0, False, "1")]
    count = 0
    while stack:
        part, depth, in_alt, path = stack.pop()
        count += 1
        if count > MAX_PARTS:
            defects.append(f"more than {MAX_PARTS} MIME parts: rest ignored")
            break
        ctype, params, problems = _content_type(part)
        for p in problems:
            defects.append(f"part {path}: {p}")
        if part is not msg:
            for d in part.defects:
                defects.append(_describe_defect(f"part {path}", d))
        payload = part.get_payload()
        if ctype.startswith("multipart/") and isinstance(payload, list):
            if depth >= MAX_DEPTH:
                defects.append(f"part {path}: MIME nesting deeper than {MAX_DEPTH}: "
                               "kept as opaque attachment")
                leaves.append((part, "application/octet-stream", {}, "attachment", "", None,
                               False, path, True))
                continue
            alt = ctype == "multipart/alternative"
            for i in range(len(payload) - 1, -1, -1):
                stack.append((payload[i], depth + 1, alt or in_alt, f"{path}.{i + 1}"))
            continue
        if ctype.startswith("multipart/"):
            defects.append(f"part {path}: {ctype} without parts, treated as text")
            ctype = "text/plain"
        disp, dparams, dproblems = _params(_raw_header(part, "Content-Disposition"))
        for p in dproblems:
            defects.append(f"part {path}: {p}")
        fname = dparams.get("filename") or params.get("name") or ""
        if fname:
            fname = _clean_filename(decode_header_value(fname, params.get("charset"),
                                                        defects, f"part {path} filename"))
        cid_raw = _raw_header(part, "Content-ID")
        cid = None
        if cid_raw:
            cid = decode_header_value(cid_raw, None, None).strip().strip("<>").strip() or None
        leaves.append((part, ctype, params, disp, fname, cid, in_alt, path, False))

    body_leaf = None
    html_leaf = None
    for leaf in leaves:
        part, ctype, params, disp, fname, cid, in_alt, path, opaque = leaf
        if opaque or disp == "attachment" or (fname and not in_alt):
            continue
        if ctype == "text/plain" and body_leaf is None:
            body_leaf = leaf
        elif ctype == "text/html" and html_leaf is None:
            html_leaf = leaf
        if body_leaf is not None and html_leaf is not None:
            break

    def text_of(leaf) -> tuple[str, str]:
        part, ctype, params, *_rest = leaf
        problems: list[str] = []
        data = _payload_bytes(part, problems)
        declared = params.get("charset") or ""
        text, _used = decode_bytes(data, declared or None, problems, f"part {leaf[7]} body")
        defects.extend(problems)
        return text, declared.strip().strip("\"'").lower()

    uu_files: list[tuple[str, bytes]] = []
    if html_leaf is not None:
        pm.body_html, html_cs = text_of(html_leaf)
    if body_leaf is not None:
        pm.body, pm.charset = text_of(body_leaf)
        pm.content_type = "text/plain"
        pm.body, uu_files = _uudecode(pm.body, defects)
    elif html_leaf is not None:
        pm.body = html_to_text(pm.body_html or "")
        pm.content_type = "text/html"
        pm.charset = html_cs
    else:
        pm.content_type = ""

    n = 0
    for leaf in leaves:
        part, ctype, params, disp, fname, cid, in_alt, path, opaque = leaf
        if leaf is body_leaf or leaf is html_leaf:
            continue
        if in_alt and ctype.startswith("text/") and not fname and disp != "attachment":
            continue  # an alternative rendering of the body, not an attachment
        n += 1
        problems: list[str] = []
        if opaque:
            data = _message_bytes_any(part)
        elif ctype in ("message/rfc822", "message/global") or (
                ctype.startswith("message/") and isinstance(part.get_payload(), list)):
            data = _message_bytes(part)
        else:
            data = _payload_bytes(part, problems)
        for p in problems:
            defects.append(f"part {path}: {p}")
        if not fname:
            if ctype == "message/rfc822":
                sub = part.get_payload()
                subj = ""
                if isinstance(sub, list) and sub:
                    subj = decode_header_value(str(sub[0].get("Subject", "") or ""), None, None)
                fname = _clean_filename(subj)[:100] + ".eml" if _clean_filename(subj) else ""
            fname = fname or _generated_name(ctype, n)
        pm.attachments.append(Attachment(
            filename=fname, content_type=ctype, data=data, content_id=cid,
            disposition="inline" if (disp == "inline" or (cid and disp != "attachment"))
            else "attachment"))
    for name, data in uu_files:
        pm.attachments.append(Attachment(filename=_clean_filename(name) or
                                         _generated_name("application/octet-stream", n + 1),
                                         content_type=mimetypes.guess_type(name)[0]
                                         or "application/octet-stream", data=data))


def _message_bytes_any(part) -> bytes:
    try:
        return part.as_bytes(policy=email.policy.compat32)
    except Exception:  # noqa: BLE001
        return b""
