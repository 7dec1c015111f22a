"""Payloads of MIME parts as bytes: enclosed messages (byte-exact from the raw mail where
they can be found), lenient base64 and quoted-printable, x-uuencode with or without a
``begin`` line. Used by gateway/mail/parser.py; never raises on malformed input."""
from __future__ import annotations

import binascii
import email
import email.message
import email.policy
import re
from email.generator import BytesGenerator
from io import BytesIO

_UU_BEGIN = re.compile(r"^begin [0-7]{3,4} ([^\r\n]+)\r?\n", re.M)
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/=\s]")
_UU_END = re.compile(r"^end[ \t]*\r?$", re.M)

_GEN_POLICY = email.policy.compat32.clone(max_line_length=None, linesep="\n")


def _message_bytes(part) -> bytes:
    """Payload bytes of a message/* part (rfc822, delivery-status, ...), as in the mail."""
    payload = part.get_payload()
    if not isinstance(payload, list):
        data = part.get_payload(decode=True)
        return data if isinstance(data, bytes) else b""
    try:
        buf = BytesIO()
        BytesGenerator(buf, mangle_from_=False, policy=_GEN_POLICY).flatten(part)
        data = buf.getvalue()
        head, sep, body = data.partition(b"\n\n")  # drop the part's own MIME headers
        if not sep:
            return data
        # The generator writes "Name: " for empty header values; the mail had "Name:".
        h2, sep2, rest = body.partition(b"\n\n")
        return re.sub(rb"(?m)^([!-9;-~]+): $", rb"\1:", h2) + sep2 + rest
    except Exception:  # noqa: BLE001
        try:
            return b"\n\n".join(p.as_bytes(policy=_GEN_POLICY) for p in payload
                                 if isinstance(p, email.message.Message))
        except Exception:  # noqa: BLE001
            return b""


_WS_BYTES = b" \t\r\n"
MAX_EXACT = 4_000_000  # bytes of an enclosed message searched for in the raw mail


def _exact_in_raw(data: bytes, raw: bytes) -> bytes:
    """The enclosed message as it stands in the raw mail (byte-exact: line ends, folding and
    white space as sent), found from the regenerated ``data``; ``data`` if not found."""
    if not data or data in raw or len(data) > MAX_EXACT:
        return data
    crlf = data.replace(b"\n", b"\r\n")
    if b"\r\n" in raw and crlf in raw:
        return crlf
    target = data.translate(None, _WS_BYTES)
    first = data.split(b"\n", 1)[0].rstrip()
    if not target or len(first) < 8:
        return data
    start = raw.find(first)
    tries = 0
    while start >= 0 and tries < 5:
        tries += 1
        end = _match_ignoring_ws(raw, start, target)
        if end is not None:
            if data.endswith(b"\n"):  # the enclosed message's own final line break
                if raw.startswith(b"\r\n", end):
                    end += 2
                elif raw.startswith(b"\n", end):
                    end += 1
            return raw[start:end]
        start = raw.find(first, start + 1)
    return data


def _match_ignoring_ws(raw: bytes, start: int, target: bytes) -> int | None:
    """End offset in ``raw`` after the non-white-space bytes ``target`` from ``start``."""
    i, j, n, m = start, 0, len(raw), len(target)
    chunk = 4096
    while j < m:
        # Compare chunk by chunk: the white-space-free slice of raw must equal the target's.
        piece = raw[i:i + chunk]
        if not piece:
            return None
        stripped = piece.translate(None, _WS_BYTES)
        want = target[j:j + len(stripped)]
        if stripped[:len(want)] != want:
            return None
        if len(stripped) <= m - j:
            j += len(stripped)
            i += len(piece)
            continue
        # The target ends inside this piece: walk it byte by byte.
        for k, b in enumerate(piece):
            if b in _WS_BYTES:
                continue
            j += 1
            if j == m:
                return i + k + 1
        return None
    # Trailing white space was consumed with the last chunk: step back to the last non-space.
    while i > start and raw[i - 1] in _WS_BYTES:
        i -= 1
    return i if i <= n else None


def _b64decode(payload: str, problems: list[str]) -> bytes:
    data = payload.encode("ascii", "ignore")
    try:
        out = binascii.a2b_base64(data)
        if _B64_JUNK.search(data):
            problems.append("base64 payload with invalid characters, which were skipped")
        return out
    except (binascii.Error, ValueError):
        pass
    clean = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    if len(clean) % 4 == 1:
        clean = clean[:-1]
    clean += b"=" * (-len(clean) % 4)
    problems.append("base64 payload with bad padding, decoded leniently")
    try:
        return binascii.a2b_base64(clean)
    except (binascii.Error, ValueError):
        return b""


def _uu_lines(lines, problems: list[str]) -> bytes:
    data = bytearray()
    bad = False
    for line in lines:
        if not line.strip():
            continue
        try:
            data += binascii.a2b_uu(line)
        except binascii.Error:
            try:  # broken encoders: decode as many bytes as the length char says
                nbytes = (((ord(line[0]) - 32) & 63) * 4 + 5) // 3
                data += binascii.a2b_uu(line[:nbytes])
            except (binascii.Error, IndexError):
                bad = True
    if bad:
        problems.append("uuencoded data: corrupt lines skipped")
    return bytes(data)


def _uu_payload(payload: str, problems: list[str]) -> bytes:
    """Content-Transfer-Encoding x-uuencode: with or without the ``begin`` / ``end`` lines."""
    lines = payload.splitlines()
    for i, line in enumerate(lines[:20]):
        if _UU_BEGIN.match(line + "\n"):
            lines = lines[i + 1:]
            break
    out = []
    for line in lines:
        if _UU_END.match(line) or line.strip() == "`" and not out:
            break
        out.append(line)
    return _uu_lines(out, problems)


def _payload_bytes(part, problems: list[str]) -> bytes:
    # Trailing white space in the CTE value ("base64 ") is common; the stdlib then does not
    # decode at all, so the common encodings are decoded here from the stripped value.
    cte = str(part.get("Content-Transfer-Encoding", "") or "").strip().lower()
    payload = part.get_payload()
    if cte == "base64" and isinstance(payload, str):
        return _b64decode(payload, problems)
    if cte == "quoted-printable" and isinstance(payload, str):
        return binascii.a2b_qp(payload.encode("ascii", "surrogateescape"))
    if cte in ("x-uuencode", "uuencode", "x-uue", "uue") and isinstance(payload, str):
        return _uu_payload(payload, problems)
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
        lines_problems: list[str] = []
        data = _uu_lines(text[m.end():end.start()].splitlines(), lines_problems)
        if lines_problems:
            problems.append(f"uuencoded file {m.group(1)!r}: corrupt lines skipped")
        files.append((m.group(1).strip(), data))
        out.append(text[pos:m.start()])
        pos = end.end()
    out.append(text[pos:])
    return "".join(out), files


def _message_bytes_any(part) -> bytes:
    try:
        return part.as_bytes(policy=email.policy.compat32)
    except Exception:  # noqa: BLE001
        return b""
