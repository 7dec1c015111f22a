"""Text helpers for mail parsing: charset normalisation, decoding with fallbacks, RFC 2047
words (lenient), HTML to plain text. Nothing here raises on bad input."""
from __future__ import annotations

import base64
import binascii
import codecs
import html
import re

# Declared name (lower-case) -> Python codec. Legacy labels are mapped to their de-facto superset
# (what mail clients really send under them), as browsers (WHATWG encoding spec) do.
_ALIASES = {
    "utf8": "utf-8", "utf-8": "utf-8", "x-utf8": "utf-8", "unicode-1-1-utf-8": "utf-8",
    "unicode-1-1-utf-7": "utf-7", "utf7": "utf-7", "x-unicode-2-0-utf-7": "utf-7",
    "iso-8859-1": "cp1252", "iso8859-1": "cp1252", "iso_8859-1": "cp1252", "latin1": "cp1252",
    "latin-1": "cp1252", "l1": "cp1252", "x-user-defined": "cp1252", "8bit": "cp1252",
    "iso-8859-9": "cp1254", "latin5": "cp1254",
    "iso-8859-11": "cp874", "tis-620": "cp874", "windows-874": "cp874",
    "ks_c_5601-1987": "cp949", "ks_c_5601": "cp949", "ksc5601": "cp949", "euc-kr": "cp949",
    "korean": "cp949", "x-windows-949": "cp949", "windows-949": "cp949",
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030",
    "chinese": "gb18030", "csgb2312": "gb18030", "gb_2312-80": "gb18030", "x-euc-cn": "gb18030",
    "euc-cn": "gb18030",
    "big5": "big5hkscs", "x-x-big5": "big5hkscs", "big-5": "big5hkscs", "cn-big5": "big5hkscs",
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932",
    "windows-31j": "cp932", "ms_kanji": "cp932", "csshiftjis": "cp932",
    "euc-jp": "euc_jis_2004", "x-euc-jp": "euc_jis_2004",
    "iso-2022-jp": "iso2022_jp_ext", "csiso2022jp": "iso2022_jp_ext",
    "iso-8859-8-i": "iso-8859-8", "iso-8859-6-i": "iso-8859-6", "iso-8859-8-e": "iso-8859-8",
    "x-mac-roman": "mac_roman", "macintosh": "mac_roman",
    "x-mac-cyrillic": "mac_cyrillic",
    "unicode": "utf-16", "ucs-2": "utf-16",
}
_NON_TEXT = {"base64", "base_64", "hex", "quopri", "quoted-printable", "rot13", "rot_13",
             "uu", "bz2", "zlib", "zip", "idna", "punycode", "undefined", "unicode_escape",
             "raw_unicode_escape", "string_escape", "mbcs", "oem", "charmap"}
FALLBACK = "cp1252"
# Supersets to try when bytes do not fit the declared codec (vendor extensions in the wild).
_SIBLINGS = {
    # 8-bit Shift_JIS/cp932 (or EUC-JP, or UTF-8) labelled ISO-2022-JP is common in the wild.
    "iso2022_jp_ext": ("x-iso2022jp-cp932", "iso2022_jp_2004", "iso2022_jp_2", "utf-8",
                       "cp932", "euc_jis_2004"),
    "cp932": ("shift_jis_2004",), "euc_jis_2004": ("cp932", "euc_jp"),
    "gb18030": ("big5hkscs",), "big5hkscs": ("gb18030",), "cp949": ("johab",),
}


def normalize_charset(name: str | None) -> str | None:
    """Python codec name for a declared MIME charset, or None if unknown/unusable."""
    if not name:
        return None
    if isinstance(name, tuple):  # RFC 2231 charset param tuple
        name = name[2] if len(name) == 3 else str(name)
    n = str(name).strip().strip("\"'").strip().lower()
    if "*" in n:  # RFC 2231 language: utf-8*en
        n = n.split("*", 1)[0]
    if not n or len(n) > 40:
        return None
    n = _ALIASES.get(n, n)
    if n.startswith("cp-"):
        n = "cp" + n[3:]
    if n.startswith("windows") and n[7:].lstrip("-_").isdigit():
        n = "cp" + n[7:].lstrip("-_")
    try:
        info = codecs.lookup(n)
    except (LookupError, ValueError, TypeError):
        return None
    if info.name in _NON_TEXT or not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def detect_charset(data: bytes) -> str | None:
    """Codec that charset-normalizer finds for undeclared 8-bit text (None: no good guess)."""
    # Imported on first use, for start-up time (charset-normalizer loads its tables).
    from charset_normalizer import from_bytes
    try:
        results = list(from_bytes(data[:_DETECT_BYTES]))
    except Exception:  # noqa: BLE001 - a detector bug must not stop parsing
        return None
    if not results or not results[0].encoding:
        return None
    best = results[0]
    if best.encoding in ("cp1252", "latin_1", "iso8859_15", "ascii", "utf_8"):
        return normalize_charset(best.encoding)
    # Western text is the most common case and several single-byte codecs decode it alike
    # (German as cp1250, Spanish as cp1257): when cp1252 reads as cleanly as the best guess,
    # keep cp1252, which is what mail clients assume.
    try:
        western = from_bytes(data[:_DETECT_BYTES], cp_isolation=["cp1252"]).best()
    except Exception:  # noqa: BLE001
        western = None
    if western is not None and western.chaos <= best.chaos + 0.01 \
            and western.coherence >= best.coherence - 0.05:
        return "cp1252"
    return normalize_charset(best.encoding)


_DETECT_BYTES = 64 * 1024


def decode_bytes(data: bytes, charset: str | None, defects: list[str] | None = None,
                 what: str = "text", utf8_first: bool = False,
                 detect: bool = False) -> tuple[str, str]:
    """Decode ``data`` declared as ``charset``; fall back to utf-8, then cp1252/latin-1.

    Returns (text, codec used). A defect is noted when the declared charset is unknown or does
    not fit the bytes. ``utf8_first`` tries UTF-8 before the declared charset (8-bit headers).
    ``detect``: for a text body without a usable charset (none, us-ascii or unknown) that is not
    UTF-8, charset-normalizer guesses the charset before the cp1252 fallback is taken.
    """
    if not data:
        return "", normalize_charset(charset) or ""
    codec = normalize_charset(charset)
    if charset and codec is None and defects is not None:
        defects.append(f"{what}: unknown charset {str(charset)[:40]!r}, decoded with fallback")
    if data.isascii() and codec in (None, "ascii", "utf-8", "cp1252"):
        return data.decode("ascii"), codec or "ascii"
    if detect and codec in (None, "ascii"):
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
        guess = detect_charset(data)
        if guess and guess not in ("ascii", "utf-8"):
            try:
                text = data.decode(guess)
            except (UnicodeDecodeError, LookupError):
                pass
            else:
                if defects is not None:
                    defects.append(f"{what}: 8-bit text without a usable charset, detected as "
                                   f"{guess}")
                return text, guess
    order: list[str] = []
    if utf8_first or codec == "ascii":
        order.append("utf-8")
    if codec and codec != "ascii":
        order.append(codec)
        order.extend(_SIBLINGS.get(codec, ()))
    for c in ("utf-8", FALLBACK):
        if c not in order:
            order.append(c)
    for i, c in enumerate(order):
        try:
            text = _iso2022jp_cp932(data) if c == "x-iso2022jp-cp932" else data.decode(c)
        except (UnicodeDecodeError, LookupError):
            continue
        except Exception:  # noqa: BLE001 - exotic codec bugs
            continue
        if (codec and c != codec and not (utf8_first and c == "utf-8") and defects is not None
                and c not in _SIBLINGS.get(codec, ())):
            defects.append(f"{what}: bytes do not match charset {str(charset)[:40]!r}, "
                           f"decoded as {c}")
        return text, c
    if defects is not None:
        defects.append(f"{what}: undecodable bytes for charset {str(charset or '')[:40]!r}, "
                       "decoded as latin-1")
    return data.decode("latin-1"), "latin-1"


def _iso2022jp_cp932(data: bytes) -> str:
    """ISO-2022-JP with Microsoft/NEC extensions (like Windows' cp50220): JIS X 0208 pairs are
    mapped to Shift_JIS and decoded as cp932, which knows NEC row 13 (①, ㈱, ...)."""
    out = bytearray()
    mode = "ascii"
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b == 0x1B:
            seq = data[i + 1:i + 3]
            if seq in (b"$B", b"$@"):
                mode = "jis"
            elif seq in (b"(B", b"(J"):
                mode = "ascii"
            elif seq == b"(I":
                mode = "kana"
            else:
                raise UnicodeDecodeError("iso2022jp", data, i, i + 1, "unknown escape")
            i += 3
            continue
        if mode == "jis" and b not in (0x0A, 0x0D):
            if i + 1 >= n:
                raise UnicodeDecodeError("iso2022jp", data, i, i + 1, "truncated")
            j1, j2 = b, data[i + 1]
            if not (0x21 <= j1 <= 0x7E and 0x21 <= j2 <= 0x7E):
                raise UnicodeDecodeError("iso2022jp", data, i, i + 2, "invalid JIS pair")
            s1 = ((j1 + 1) >> 1) + (0x70 if j1 <= 0x5E else 0xB0)
            if j1 & 1:
                s2 = j2 + (0x20 if j2 >= 0x60 else 0x1F)
            else:
                s2 = j2 + 0x7E
            out += bytes((s1, s2))
            i += 2
            continue
        if mode == "kana" and 0x21 <= b <= 0x5F:
            out.append(b + 0x80)
        elif b >= 0x80:
            raise UnicodeDecodeError("iso2022jp", data, i, i + 1, "8-bit byte")
        else:
            out.append(b)
        i += 1
    return out.decode("cp932")


def unsurrogate(value: str) -> bytes | None:
    """Bytes behind a str that the email package decoded with surrogateescape; None if ASCII."""
    if value.isascii():
        return None
    try:
        return value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        # Real Unicode (e.g. from a str input) mixed in: encode everything as UTF-8.
        return value.encode("utf-8", "surrogateescape")


def fix_8bit(value: str, charset: str | None, defects: list[str] | None, what: str) -> str:
    """Decode raw 8-bit header bytes (surrogate-escaped by the email package)."""
    data = unsurrogate(value)
    if data is None:
        return value
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    text, used = decode_bytes(data, charset, None, what)
    if defects is not None:
        defects.append(f"{what}: 8-bit bytes in header, not UTF-8; decoded as {used}")
    return text


# --- RFC 2047 -------------------------------------------------------------------------------

_EWORD = re.compile(r"=\?([^?\s]{1,60})\?([QqBb])\?([^?\r\n]*?)\?=")
_WS = re.compile(r"[ \t\r\n]*")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f]")   # control characters other than tab
_C1 = re.compile(rb"[\x80-\x9f]")
_QHEX = re.compile(rb"=([0-9A-Fa-f]{2})")


def _decode_word(enc: str, text: str) -> bytes:
    if enc in "Bb":
        raw = re.sub(r"[^A-Za-z0-9+/]", "", text)
        raw = raw[: len(raw) - len(raw) % 4] if len(raw) % 4 == 1 else raw + "=" * (-len(raw) % 4)
        try:
            return base64.b64decode(raw)
        except (binascii.Error, ValueError):
            return text.encode("ascii", "replace")
    data = text.encode("ascii", "surrogateescape").replace(b"_", b" ")
    return _QHEX.sub(lambda m: bytes([int(m.group(1), 16)]), data)


def decode_words(value: str, defects: list[str] | None = None, what: str = "header") -> str:
    """Decode RFC 2047 encoded words leniently: inside quotes, without surrounding whitespace,
    adjacent words sharing one multi-byte character, wrong or unknown charsets."""
    if "=?" not in value:
        return value
    out: list[str] = []
    pos = 0
    pending: list[bytes] = []
    pending_cs: str | None = None

    def flush():
        nonlocal pending, pending_cs
        if pending:
            text, _ = decode_bytes(b"".join(pending), pending_cs, defects, what,
                                   utf8_first=False)
            out.append(text)
        pending, pending_cs = [], None

    for m in _EWORD.finditer(value):
        gap = value[pos:m.start()]
        if pending and _WS.fullmatch(gap):
            gap = ""  # whitespace between adjacent encoded words is dropped
        cs = m.group(1).split("*", 1)[0]
        data = _decode_word(m.group(2), m.group(3))
        if gap:
            flush()
            out.append(gap)
        if pending and cs.lower() != (pending_cs or "").lower():
            flush()
        pending.append(data)
        pending_cs = cs
        pos = m.end()
    flush()
    out.append(value[pos:])
    return "".join(out)


def decode_header_value(value: str, charset: str | None = None,
                        defects: list[str] | None = None, what: str = "header") -> str:
    """Raw header value (surrogate-escaped 8-bit possible) -> clean Unicode text, unfolded."""
    if not isinstance(value, str):
        value = str(value)
    value = fix_8bit(value, charset, defects, what)
    value = re.sub(r"\r?\n(?=[ \t])", "", value).replace("\r", "").replace("\n", " ")
    value = decode_words(value, defects, what)
    # Control characters other than tab make no sense in a decoded header value.
    if _CONTROL.search(value):   # a regex, not a per-character loop: headers can be huge
        value = _CONTROL.sub(" ", value)
    return value.strip()


# --- HTML -> text ---------------------------------------------------------------------------

_BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol",
          "dl", "dt", "dd", "blockquote", "pre", "hr", "section", "article", "header", "footer",
          "address", "center", "form", "fieldset", "nav", "aside", "main", "figure", "tbody",
          "thead", "tfoot", "caption", "title", "body", "html", "option", "legend", "details",
          "summary", "o:p"}
_PARA = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote", "ul", "ol", "dl", "pre",
         "hr"}
_SKIP = {"script", "style", "head", "xml", "template", "noscript", "object", "title"}
# A linear tokenizer instead of html.parser: html.parser of Python <= 3.11.x / 3.12.x before the
# 2025 security fixes is quadratic or worse on some malformed input (240 s for '<!--' followed
# by 150 kB of '<a '). Every construct below is found with str.find or a regex that cannot
# scan past the next '<', so the whole conversion is O(n).
_TOKEN = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:_-]{0,40})((?:[^<>\"']|\"[^\"<]*\"|'[^'<]*')*)(/?)>"
                    r"|<!|<\?|<|[^<]+")


def _breaks(m: re.Match) -> str:
    g = m.group(0)
    return "\n\n" if ("\x01" in g or g.count("\n") >= 2) else "\n"


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t]*[\x00\x01][\x00\x01 \t\n]*", _breaks, text)
    text = text.replace("\xa0", " ").replace("\u200b", "")
    lines = [ln.rstrip(" \t") for ln in text.split("\n")]
    lines = [ln[1:] if ln.startswith(" ") and not ln.startswith("  ") else ln for ln in lines]
    out: list[str] = []
    blank = False
    for ln in lines:
        if not ln:
            blank = bool(out)
            continue
        if blank:
            out.append("")
            blank = False
        out.append(ln)
    return "\n".join(out)


_TAG_START = re.compile(r"<(?:!|\?|/?[A-Za-z])")
_BIG_HTML = 4_000_000  # above this, a C-speed regex stripper (script/style text may remain)
_BIG_BLOCK = re.compile(r"<(/?)(?:p|div|br|li|tr|h[1-6]|table|blockquote|ul|ol|pre|hr)\b[^<>]*>",
                        re.I)


_HREF = re.compile(r"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.I)


def _link_target(href: str, label: str) -> str:
    """What to show after a link's text: its target, unless the text already says it."""
    href = re.sub(r"[\x00-\x20]+", "", href)[:2000]
    low = href.lower()
    if not low.startswith(("http://", "https://", "mailto:", "ftp://")):
        return ""  # anchors, cid:, javascript:, relative links: nothing useful to show
    shown = href[7:] if low.startswith("mailto:") else href
    text = re.sub(r"[\x00-\x03\s]+", "", label).lower()
    bare = re.sub(r"^(?:https?://|mailto:|ftp://)", "", low).rstrip("/")
    if not text or bare in text or text.rstrip("/") in (low.rstrip("/"), bare):
        return "" if text else shown
    return shown


def _html_parts(markup: str) -> list[str]:
    parts: list[str] = []
    anchors: list[tuple[str, int]] = []
    lower = markup.lower()
    pos, n = 0, len(markup)
    pre = 0
    while pos < n:
        m0 = _TAG_START.search(markup, pos)
        start = n if m0 is None else m0.start()
        if start > pos:
            text = markup[pos:start]
            if pre:  # keep line breaks and indentation inside <pre>
                text = text.replace("\r\n", "\x02").replace("\n", "\x02").replace(" ", "\x03")
            parts.append(text)
        if m0 is None:
            break
        pos = start
        if markup.startswith("<!--", pos):
            end = markup.find("-->", pos + 4)
            pos = n if end < 0 else end + 3
            continue
        if markup[pos + 1] in "!?":  # doctype, CDATA, processing instruction: skip to '>'
            end = markup.find(">", pos)
            pos = n if end < 0 else end + 1
            continue
        m = _TOKEN.match(markup, pos)
        if m is None or not m.group(2):  # '<' that does not open a complete tag: text
            parts.append("<")
            pos += 1
            continue
        pos = m.end()
        tag = m.group(2).lower()
        closing = m.group(1) == "/"
        if tag in _SKIP and not closing and not m.group(4):
            end = lower.find(f"</{tag}", pos)
            if end < 0:
                # Unclosed <head>/<title> must not swallow the document; others end it.
                if tag in ("head", "title"):
                    continue
                break
            gt = markup.find(">", end)
            pos = n if gt < 0 else gt + 1
            continue
        if tag == "a":
            if not closing:
                h = _HREF.search(m.group(3) or "")
                href = html.unescape(next(g for g in h.groups() if g is not None)).strip() \
                    if h else ""
                anchors.append((href, len(parts)))
            elif anchors:
                href, start_at = anchors.pop()
                label = html.unescape("".join(parts[start_at:]))
                target = _link_target(href, label)
                if target:
                    parts.append(f" [{target}]")
        if tag == "pre":
            pre = max(0, pre - 1) if closing else pre + 1
        if tag == "br":
            parts.append("\x02")
        elif tag in _BLOCK:
            parts.append("\x01" if tag in _PARA else "\x00")
        if not closing and tag in ("td", "th"):
            parts.append(" ")
        if not closing and tag == "li":
            parts.append("* ")
    return parts


def _finish(text: str) -> str:
    text = re.sub(r"\s+", " ", text).replace("\x02", "\n").replace("\x03", " ")
    return _tidy(html.unescape(text))


def html_to_text(markup: str) -> str:
    """Readable plain text from HTML: script/style/head dropped, entities decoded, line breaks
    for block elements. Linear time, never raises."""
    if not markup:
        return ""
    try:
        if len(markup) <= _BIG_HTML:
            return _finish("".join(_html_parts(markup)))
        text = _BIG_BLOCK.sub("\x00", markup)
        return _finish(re.sub(r"<[^<>]*>", "", text))
    except Exception:  # noqa: BLE001
        try:
            return _tidy(html.unescape(re.sub(r"<[^<>]*>", " ", markup)))
        except Exception:  # noqa: BLE001
            return markup


def mime_charset_name(codec: str, data: bytes) -> str:
    """MIME name for a codec we guessed (no charset declared)."""
    if codec == "cp1252":
        return "windows-1252" if _C1.search(data) else "iso-8859-1"
    if codec in ("ascii", ""):
        return "us-ascii" if codec else ""
    return codec.replace("_", "-")


# --- format=flowed (RFC 3676) ----------------------------------------------------------------

def unflow(text: str, delsp: bool = False) -> str:
    """Join the soft line breaks of a format=flowed text (RFC 3676 section 4): a line ending in
    a space continues on the next line of the same quote depth; space-stuffing is removed;
    with DelSp=yes the space before a soft break is deleted. The signature line "-- " is hard."""
    out: list[str] = []
    buf: str | None = None
    depth = 0
    soft = False
    for line in text.split("\n"):
        d = len(line) - len(line.lstrip(">"))
        content = line[d:]
        if content.startswith(" "):
            content = content[1:]  # space-stuffed (or the space after the quote marks)
        is_soft = content.endswith(" ") and content != "-- "
        if is_soft and delsp:
            content = content[:-1]
        if buf is not None and soft and d == depth:
            buf += content
        else:
            if buf is not None:
                out.append((">" * depth + " " if depth else "") + buf)
            buf, depth = content, d
        soft = is_soft
    if buf is not None:
        out.append((">" * depth + " " if depth else "") + buf)
    return "\n".join(out)
