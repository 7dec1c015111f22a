"""A seeded mutation fuzzer for mail: takes real mails and breaks them the ways hostile or
broken senders do (8-bit and UTF-8 headers, NUL bytes, long lines, lost separators, huge
header lists, bad MIME). Used by tests/test_fuzz.py (a couple of thousand mutants) and
bench/fuzz.py (as many as you like). Deterministic for a given seed."""
from __future__ import annotations

import random

HEADER_NAMES = (b"From", b"To", b"Cc", b"Reply-To", b"Subject", b"Message-ID", b"In-Reply-To",
                b"References", b"Content-Type", b"Content-Transfer-Encoding",
                b"Auto-Submitted", b"X-Ticket-Queue", b"Return-Path", b"Date")
ODD_TEXT = ("kunde@straße.de", "Jürgen Müller <jürgen@exämple.de>", "用户@例子.广告",
            "<id-ß@straße.de>", "=?utf-8?q?=E2=82=AC?=", "=?bogus?B?////?=", "\u202e", "",
            "<" + "a" * 1200 + "@x>", "x\x00y", "\"unterminated", "<>", "@", "a@b@c")


def _split(raw: bytes) -> tuple[list[bytes], bytes, bytes]:
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = raw.find(sep)
        if i >= 0:
            return raw[:i].split(b"\n"), sep, raw[i + len(sep):]
    return raw.split(b"\n"), b"", b""


def _join(head: list[bytes], sep: bytes, body: bytes) -> bytes:
    return b"\n".join(head) + (sep or b"\n\n") + body


def _header_value(rng: random.Random) -> bytes:
    text = rng.choice(ODD_TEXT)
    data = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.3:
        data = text.encode("latin-1", "replace")
    return data


def mutate(raw: bytes, rng: random.Random) -> tuple[bytes, list[str]]:
    """One to three random mutations of ``raw``, and their names."""
    names = []
    for _ in range(rng.randint(1, 3)):
        mutation = rng.choice(MUTATIONS)
        raw = mutation(raw, rng)
        names.append(mutation.__name__.strip("_"))
    return raw[:2_000_000], names


def _odd_header(raw, rng):
    head, sep, body = _split(raw)
    name = rng.choice(HEADER_NAMES)
    head.insert(rng.randint(0, len(head)), name + b": " + _header_value(rng))
    return _join(head, sep, body)


def _replace_header(raw, rng):
    head, sep, body = _split(raw)
    name = rng.choice(HEADER_NAMES).lower()
    head = [line for line in head if not line.lower().startswith(name + b":")]
    head.append(name + b": " + _header_value(rng))
    return _join(head, sep, body)


def _flip_bytes(raw, rng):
    data = bytearray(raw)
    for _ in range(rng.randint(1, 20)):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def _nul_bytes(raw, rng):
    data = bytearray(raw)
    for _ in range(rng.randint(1, 5)):
        data.insert(rng.randint(0, len(data)), 0)
    return bytes(data)


def _truncate(raw, rng):
    return raw[:rng.randint(0, max(len(raw) - 1, 0))]


def _long_line(raw, rng):
    head, sep, body = _split(raw)
    line = b"X-Long: " + b"y" * rng.choice((999, 1001, 5000, 70_000))
    head.insert(rng.randint(0, len(head)), line)
    return _join(head, sep, body + b"\n" + b"z" * rng.choice((1001, 20_000)) + b"\n")


def _no_separator(raw, rng):
    head, sep, body = _split(raw)
    return b"\n".join(head) + b"\n" + body


def _many_references(raw, rng):
    head, sep, body = _split(raw)
    refs = b" ".join(b"<r%d@example.com>" % i for i in range(rng.choice((500, 5000))))
    head.append(b"References: " + refs)
    return _join(head, sep, body)


def _bad_mime(raw, rng):
    head, sep, body = _split(raw)
    head = [line for line in head if not line.lower().startswith(b"content-type:")]
    choice = rng.choice((b'multipart/mixed; boundary="' + b"b" * 300 + b'"',
                         b"multipart/mixed", b"text/plain; charset=x-unknown-999",
                         b'multipart/alternative; boundary=""', b"message/rfc822",
                         b"text/html; charset=utf-7", b"application/octet-stream; name=" +
                         "naïve.pdf".encode("latin-1")))
    head.append(b"Content-Type: " + choice)
    return _join(head, sep, body)


def _crlf_mix(raw, rng):
    return raw.replace(b"\r\n", b"\n") if rng.random() < 0.5 else raw.replace(b"\n", b"\r\r\n")


def _duplicate_headers(raw, rng):
    head, sep, body = _split(raw)
    if head:
        line = rng.choice(head)
        head += [line] * rng.randint(2, 200)
    return _join(head, sep, body)


MUTATIONS = (_odd_header, _replace_header, _flip_bytes, _nul_bytes, _truncate, _long_line,
             _no_separator, _many_references, _bad_mime, _crlf_mix, _duplicate_headers)


def mutants(seeds: list[bytes], count: int, seed: int = 1):
    """``count`` (index, mutant, mutation names) from the ``seeds`` mails, reproducible by
    ``seed``."""
    rng = random.Random(seed)
    for i in range(count):
        raw, names = mutate(rng.choice(seeds), rng)
        yield i, raw, names
