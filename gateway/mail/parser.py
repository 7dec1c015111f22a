"""Turn raw bytes into a ParsedMail. Never raises, on any input.

Parser decision, MEASURED with ``bench/parse.py`` (Python 3.11.7; corpus /work/shared/corpus,
790 mails / 10.7 MB from 9 projects; Zammad = 72 mails x 6 fields = 432 checks, OTRS
EmailParser.t = 47-49 applicable checks; best of 3 runs; plus one synthetic 50 MB mail):

    option            mails/s  exceptions  zammad   otrs   50 MB mail (single run, noisy)
    ticketgate (this)     898           0  426/432  47/49  1.5-2.4 s   <== chosen
    tg+default            320           0  426/432  47/49  1.5 s  (same layer, policy.default tree)
    stdlib-default        171           2  364/432  27/47  1.6 s  (get_body/get_content/...)
    mail-parser           762           8  383/432  31/47  1.7 s  (mailparser.parse_from_bytes)

So: stdlib ``BytesParser`` with **compat32** (tree built with the ``EmailMessage`` class) plus
our own tolerant decoding layer (this module + gateway/mail/text.py). ``policy.default`` builds
header objects while parsing (about 3x slower on the corpus) and its header parser raises on
some real mails (RFC 2231 ISO-2022-JP parameters in otrs PostMaster-Test12.box: the parse itself
raises UnicodeDecodeError); its get_content() has no charset fallback. mail-parser wraps the
same stdlib parser, raises on 8 corpus mails, has no fallback for wrong charsets and loses
Content-ID/inline information. ``ParsedMail.message`` is therefore a compat32-policy tree:
walk()/iter_parts()/get_payload(decode=True) work, header values are raw strings (use
``ParsedMail.headers`` for decoded values) and get_content() is not available.

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

from gateway.mail.model import Address, Attachment, ParsedMail
from gateway.mail.payload import (_b64decode, _exact_in_raw, _message_bytes, _message_bytes_any,
                                  _payload_bytes, _uudecode)
from gateway.mail.text import (decode_bytes, decode_header_value, decode_words, fix_8bit,
                               html_to_text, mime_charset_name, normalize_charset, unflow)

MAX_DEPTH = 50               # MIME nesting walked; deeper parts are kept as opaque attachments
MAX_PARTS = 5000             # parts walked per mail
MAX_ADDRESS_HEADER = 100_000  # chars of one To/Cc/... header split into addresses
_FLATTEN_AFTER = (100, 20)   # re-parse attempts after a RecursionError in the stdlib parser

# The tree policy: compat32 (see module docstring). The tree is built with the EmailMessage
# class so walk()/iter_parts()/get_body() work for detectors; header values stay raw strings.
TREE_POLICY = email.policy.compat32

_MSGID = re.compile(r"<([^<>\s]+)>")
_CT_MULTIPART = re.compile(rb"(content-type:[ \t]*(?:\r?\n[ \t]+)?)multipart/", re.I)
_META_CHARSET = re.compile(r"""<meta\b[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})""", re.I)

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


def _params(raw: str | None, charset: str | None = None
            ) -> tuple[str, dict[str, str], list[str]]:
    """(lower-case value, params, problems) of a Content-Type/-Disposition raw header value.

    RFC 2231 (continuations, charsets) is handled by the compat32 parameter code, which only
    needs a plain Message shim holding the raw header. Raw 8-bit bytes (a file name sent
    unencoded) are decoded as UTF-8 if they are, else with ``charset`` (the mail's)."""
    if not raw:
        return "", {}, []
    problems: list[str] = []
    raw = fix_8bit(re.sub(r"\r?\n(?=[ \t])", "", raw), charset, problems, "MIME parameter")
    raw = raw[:16_000]  # the stdlib parameter parser is quadratic: 200 KB took 5 s
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


def _content_type(part, charset: str | None = None) -> tuple[str, dict[str, str], list[str]]:
    ctype, params, problems = _params(_raw_header(part, "Content-Type"), charset)
    ctype = ctype.strip("\"' ")
    if not ctype or "/" not in ctype or " " in ctype:
        default = part.get_default_type()
        if ctype and (params.get("name") or params.get("filename")):
            default = "application/octet-stream"  # a named file, not text
        if ctype:
            problems.append(f"invalid Content-Type {ctype[:60]!r}, treated as {default}")
        ctype = default
    return ctype, params, problems


def _clean_filename(name: str) -> str:
    name = re.sub(r"[\r\n\t\x00-\x1f\x7f]+", " ", name)
    name = name.replace("/", "_").replace("\\", "_")
    name = re.sub(r" {2,}", " ", name).strip(" .") if name.strip(" .") else ""
    return name[:255]


def _generated_name(ctype: str, n: int) -> str:
    ext = _EXT_OVERRIDES.get(ctype) or mimetypes.guess_extension(ctype, strict=False) or ".bin"
    return f"file-{n}{ext}"


_EWORD_ANY = re.compile(r"=\?[^?\s]{1,60}\?[QqBb]\?[^?\r\n]*?\?=")
_FIRST_ADDR = re.compile(r"[^\s<>@,;:\"()]+@[^\s<>@,;:\"()]+")
_LOCALPART = re.compile(r"^[\w.+=-]+$")
_COMMENT = re.compile(r"\s*\([^()]*\)\s*")


def _address_list(values: list[str], charset: str | None, defects: list[str],
                  what: str) -> list[Address]:
    out: list[Address] = []
    for value in values:
        if len(value) > MAX_ADDRESS_HEADER:
            defects.append(f"{what}: address header of {len(value)} chars truncated")
            value = value[:MAX_ADDRESS_HEADER].rsplit(",", 1)[0]
        value = fix_8bit(value, charset, defects, what)
        value = re.sub(r"\r?\n(?=[ \t])", "", value).replace("\r", " ").replace("\n", " ")
        # Encoded words may hide ',' '<' '@' (sloppy senders): protect them while splitting.
        words: list[str] = []

        def protect(m):
            words.append(m.group(0))
            return f"TGEWORD{len(words) - 1}X"

        value = _EWORD_ANY.sub(protect, value)

        def restore(text: str) -> str:
            return re.sub(r"TGEWORD(\d+)X", lambda m: words[int(m.group(1))], text) \
                if words else text

        try:
            pairs = email.utils.getaddresses([value])
        except Exception as exc:  # noqa: BLE001
            defects.append(f"{what}: unparsable address list ({exc})")
            pairs = []
        for name, addr in pairs:
            addr = restore(addr or "").strip().strip("<>").strip()
            if ":" in addr and "@" in addr.split(":", 1)[1]:  # group syntax left-over
                addr = addr.split(":", 1)[1].strip()
            if "=?" in addr:
                addr = decode_words(addr, defects, what)
            if addr.startswith("@"):  # "a!b@host@relay": the parser kept only the tail
                m = _FIRST_ADDR.search(value)
                if m:
                    addr = m.group(0)
            if not addr or ("@" not in addr and not _LOCALPART.match(addr)):
                if addr:
                    defects.append(f"{what}: ignored invalid address {addr[:60]!r}")
                continue
            name = restore(name or "")
            if "(" in name and _COMMENT.sub(" ", name).strip():
                # A (comment) outside quotes is not part of the display name.
                unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', "", value)
                if any(c.strip() in unquoted for c in _COMMENT.findall(name)):
                    name = _COMMENT.sub(" ", name)
            name = decode_words(name, defects, what).strip()
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


# --- parse ----------------------------------------------------------------------------------

class _TreeMessage(email.message.EmailMessage):
    """EmailMessage whose multipart boundary is unfolded (``boundary="simple<CRLF> boundary"``
    means ``simple boundary``; the stdlib keeps the line break and then finds no part)."""

    def get_boundary(self, failobj=None):
        boundary = super().get_boundary(failobj)
        if isinstance(boundary, str) and ("\n" in boundary or "\r" in boundary):
            boundary = re.sub(r"\r?\n(?=[ \t])", "", boundary).replace("\r", "").replace("\n", "")
        return boundary


def _from_bytes(raw: bytes, headersonly: bool = False) -> email.message.EmailMessage:
    return email.parser.BytesParser(_class=_TreeMessage, policy=TREE_POLICY
                                    ).parsebytes(raw, headersonly=headersonly)


def _parse_tree(raw: bytes, defects: list[str]) -> email.message.EmailMessage:
    try:
        return _from_bytes(raw)
    except RecursionError:
        pass
    except Exception as exc:  # noqa: BLE001 - e.g. policy.default header bugs
        defects.append(f"stdlib parser failed ({type(exc).__name__}: {exc}); "
                       "re-parsed with compat32")
        return email.parser.BytesParser(_class=_TreeMessage,
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


def _decode_enclosed(msg, defects: list[str]) -> None:
    """Repair what the stdlib makes of some enclosed messages and reports:

    * message/rfc822 sent base64 or quoted-printable encoded (RFC 2046 forbids it, mailers do
      it) or starting with junk (an mbox ">From " line): the stdlib parses it as a header-less
      message; it is decoded and parsed again.
    * message/delivery-status: empty status groups (from trailing blank lines) are dropped; a
      group announced as base64 by the group before it (a rewriting relay) is decoded.
    """
    count = 0
    for part in _iter_parts(msg):
        count += 1
        if count > MAX_PARTS:
            return
        if part.get_content_maintype() != "message":
            continue
        payload = part.get_payload()
        if not isinstance(payload, list):
            continue
        if part.get_content_type() in ("message/delivery-status",
                                       "message/global-delivery-status"):
            _fix_status_groups(part, payload, defects)
            continue
        if len(payload) != 1 or payload[0].keys():
            continue
        text = payload[0].get_payload()
        if not isinstance(text, str):
            continue
        cte = str(part.get("Content-Transfer-Encoding", "") or "").strip().lower()
        data = text.encode("ascii", "surrogateescape")
        problems: list[str] = []
        if cte == "base64":
            data = _b64decode(text, problems)
        elif cte == "quoted-printable":
            data = binascii.a2b_qp(data)
        elif _repair_header_block(data, problems) is data:
            continue
        if not data.strip():
            continue
        try:
            inner = _from_bytes(_repair_header_block(data, problems))
        except Exception:  # noqa: BLE001 - RecursionError etc.: keep it as it was
            continue
        part.set_payload([inner])
        defects.append(f"enclosed {part.get_content_type()} part re-parsed"
                       + (f" ({cte}-encoded)" if cte in ("base64", "quoted-printable") else ""))
        defects.extend(problems)


def _fix_status_groups(part, groups: list, defects: list[str]) -> None:
    out = []
    cte = ""
    for group in groups:
        body = group.get_payload()
        if not group.keys():
            if not isinstance(body, str) or not body.strip():
                continue  # an empty group: a trailing blank line
            if cte == "base64":
                data = _b64decode(body, [])
                try:
                    group = _from_bytes(data, headersonly=True)
                except Exception:  # noqa: BLE001
                    pass
                else:
                    defects.append("base64-encoded delivery-status group decoded")
        elif isinstance(body, str) and re.search(r"(?m)^[A-Za-z][A-Za-z0-9-]*[ \t]*:", body):
            # A line that is no field (an MTA's boilerplate) ended the group's fields early:
            # the fields after it (often Status) belong to the same group.
            text = "".join(f"{k}: {v}\n" for k, v in group.raw_items()) + body
            data = text.encode("utf-8", "surrogateescape")
            try:
                group = _from_bytes(_repair_header_block(data, []), headersonly=True)
            except Exception:  # noqa: BLE001
                pass
            else:
                defects.append("delivery-status group interrupted by a non-field line: joined")
        cte = str(group.get("Content-Transfer-Encoding", "") or "").strip().lower()
        out.append(group)
    if len(out) != len(groups) or any(a is not b for a, b in zip(out, groups)):
        part.set_payload(out)


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


_HEADER_LINE = re.compile(rb"[!-9;-~]+[ \t]*:")
_OBS_COLON = re.compile(rb"([!-9;-~]+)[ \t]+:")


def _repair_header_block(raw: bytes, defects: list[str]) -> bytes:
    """Skip junk lines before the header block; turn header lines that are neither a field nor
    a continuation (broken folding) into continuation lines, instead of letting the parser end
    the header block there (which would move From/Subject into the body)."""
    m = re.search(rb"\r?\n\r?\n", raw[:1_000_000])
    head_end = m.start() if m else min(len(raw), 1_000_000)
    head = raw[:head_end]
    lines = head.split(b"\n")
    start = 0
    if lines and not _HEADER_LINE.match(lines[0]) and not lines[0].startswith(b"From "):
        for i in range(1, min(len(lines), 6)):
            if _HEADER_LINE.match(lines[i]):
                if sum(1 for ln in lines[i:i + 5] if _HEADER_LINE.match(ln)) >= 2:
                    start = i
                break
        if start:
            defects.append(f"{start} junk line(s) before the header block skipped")
    changed = obsolete = False
    out = []
    for i, ln in enumerate(lines[start:], start):
        if (i > start and ln.strip() and ln[:1] not in (b" ", b"\t")
                and not _HEADER_LINE.match(ln) and not (i == 0 and ln.startswith(b"From "))):
            ln = b" " + ln
            changed = True
        elif ln[:1] not in (b" ", b"\t") and _OBS_COLON.match(ln):
            ln = _OBS_COLON.sub(rb"\1:", ln, count=1)  # RFC 5322 4.5.3: "Subject :" obsolete
            obsolete = True
        out.append(ln)
    if changed:
        defects.append("header line without field name joined to the previous header")
    if obsolete:
        defects.append("white space before the colon of a header field removed")
        changed = True
    if not start and not changed:
        return raw
    return b"\n".join(out) + raw[head_end:]


_MULTIBYTE = ("gb18030", "big5hkscs", "cp932", "shift_jis", "euc_jp", "euc_jis_2004", "cp949",
              "euc_kr", "iso2022_jp_ext", "koi8-r", "koi8-u", "cp1251")


def _header_charset(msg) -> str | None:
    """Charset to try for raw 8-bit header bytes (after UTF-8): a CJK/Cyrillic charset declared
    anywhere in the mail wins over the top-level one (bodies are often labelled better than
    headers, and a legacy multi-byte charset rarely decodes Latin-1 text strictly)."""
    top = _content_type(msg)[1].get("charset")
    first = None
    seen = 0
    for part in _iter_parts(msg):
        seen += 1
        if seen > 200:
            break
        declared = _content_type(part)[1].get("charset")
        cs = normalize_charset(declared)
        if cs in _MULTIBYTE:
            return cs
        if cs and cs not in ("ascii", "utf-8") and first is None:
            first = declared
    return top or first  # a multipart mail: the charset its text parts use


def _iter_parts(msg):
    stack = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        yield part
        payload = part.get_payload()
        if isinstance(payload, list) and depth < MAX_DEPTH:
            stack.extend((p, depth + 1) for p in reversed(payload))


def _parse(raw: bytes) -> ParsedMail:
    defects: list[str] = []
    msg = _parse_tree(_repair_header_block(raw, defects), defects)
    _decode_enclosed(msg, defects)
    pm = ParsedMail(raw=raw, message=msg)
    if not raw.strip():
        defects.append("empty message")

    hcharset = _header_charset(msg)  # best guess for 8-bit header bytes

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
    if not pm.from_:
        for alt in ("Sender", "Reply-To", "Return-Path"):
            found = _address_list(raw_all(alt), hcharset, [], alt)
            if found:
                pm.from_ = found[:1]
                defects.append(f"no usable From address; sender taken from {alt}")
                break

    date = pm.header("Date")
    if date:
        try:
            dt = email.utils.parsedate_to_datetime(date)
            pm.date = dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
        except Exception:  # noqa: BLE001
            defects.append(f"Date: unparsable {date[:60]!r}")

    for d in msg.defects:
        defects.append(_describe_defect("", d))
    _walk(msg, pm, defects, hcharset)
    pm.defects = defects
    return pm


def _walk(msg, pm: ParsedMail, defects: list[str], hcharset: str | None = None) -> None:
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
        ctype, params, problems = _content_type(part, hcharset)
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
            # Children of multipart/alternative (and of a multipart/related directly below
            # one) are renderings of the body; deeper (e.g. multipart/mixed) parts are not.
            alt = ctype == "multipart/alternative" or (in_alt and ctype == "multipart/related")
            for i in range(len(payload) - 1, -1, -1):
                stack.append((payload[i], depth + 1, alt, f"{path}.{i + 1}"))
            continue
        if ctype.startswith("multipart/"):
            defects.append(f"part {path}: {ctype} without parts, treated as text")
            ctype = "text/plain"
        disp, dparams, dproblems = _params(_raw_header(part, "Content-Disposition"), hcharset)
        for p in dproblems:
            defects.append(f"part {path}: {p}")
        # "file" is not standard, but some mailers name the file only there.
        fname = (dparams.get("filename") or params.get("name") or params.get("filename")
                 or params.get("file") or dparams.get("name") or "")
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
        if not declared and ctype == "text/html":
            m = _META_CHARSET.search(data[:4096].decode("latin-1"))
            if m:  # HTML5 / http-equiv <meta> charset, as browsers do (no MIME charset given)
                declared = m.group(1)
        text, used = decode_bytes(data, declared or None, problems, f"part {leaf[7]} body",
                                  detect=True)
        defects.extend(problems)
        if not declared and not data.isascii():
            declared = mime_charset_name(used, data)  # report what the bytes turned out to be
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if ctype == "text/plain" and params.get("format", "").strip().lower() == "flowed":
            text = unflow(text, params.get("delsp", "").strip().lower() == "yes")
        return text, declared.strip().strip("\"'").lower()

    # Further inline text/plain parts outside an alternative (a body split around attachments,
    # a list footer) belong to the body: joined in order, separated by a blank line.
    more_text = [] if body_leaf is None else [
        leaf for leaf in leaves[leaves.index(body_leaf) + 1:]
        if leaf[1] == "text/plain" and not leaf[8] and leaf[3] != "attachment" and not leaf[4]
        and not leaf[6] and leaf is not html_leaf]

    joined = {id(leaf) for leaf in more_text}

    uu_files: list[tuple[str, bytes]] = []
    if html_leaf is not None:
        pm.body_html, html_cs = text_of(html_leaf)
    if body_leaf is not None:
        pm.body, pm.charset = text_of(body_leaf)
        pm.content_type = "text/plain"
        for leaf in more_text:
            text = text_of(leaf)[0]
            if text.strip():
                pm.body = pm.body.rstrip("\n") + "\n\n" + text
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
        if leaf is body_leaf or leaf is html_leaf or id(leaf) in joined:
            continue
        if in_alt and ctype.startswith("text/") and not fname and disp != "attachment":
            continue  # an alternative rendering of the body, not an attachment
        n += 1
        problems: list[str] = []
        if opaque:
            data = _message_bytes_any(part)
        elif ctype in ("message/rfc822", "message/global") or (
                ctype.startswith("message/") and isinstance(part.get_payload(), list)):
            data = _exact_in_raw(_message_bytes(part), pm.raw)
        else:
            data = _payload_bytes(part, problems)
            if ctype.startswith("text/") and b"\r\n" in data and str(
                    part.get("Content-Transfer-Encoding", "")).strip().lower() != "base64":
                data = data.replace(b"\r\n", b"\n")  # transport line ends (SMTP vs mbox)
        for p in problems:
            defects.append(f"part {path}: {p}")
        if not fname:
            if ctype == "message/rfc822":
                sub = part.get_payload()
                subj = ""
                if isinstance(sub, list) and sub:
                    subj = decode_header_value(_raw_header(sub[0], "Subject") or "", hcharset,
                                               None)
                fname = _clean_filename(subj)[:100] + ".eml" if _clean_filename(subj) else ""
            desc = decode_header_value(_raw_header(part, "Content-Description") or "", None, None)
            desc = _clean_filename(desc)
            if not fname and desc and len(desc) <= 60:
                ext = _generated_name(ctype, n).rsplit(".", 1)[-1]
                fname = desc if desc.lower().endswith("." + ext) else f"{desc}.{ext}"
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
