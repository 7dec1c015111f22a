"""The outbound queue's part of ticketgate.yaml (``outbound:``): the smarthost, retries and
leases, and the auto-response limit. Every key with its type, default and doc."""
from __future__ import annotations

import re
from datetime import timedelta

from gateway.config import ConfigSection, Problem
from gateway.config.schema import Key, section

OUTBOUND = {
    "host": Key(str, "127.0.0.1", "smarthost"),
    "port": Key(int, 25, "smarthost port"),
    "tls": Key(str, "none", "none | starttls | tls"),
    "username": Key(str, None, "SMTP AUTH user"),
    "password_env": Key(str, None, "environment variable holding the SMTP AUTH password"),
    "password_file": Key(str, None, "file holding the SMTP AUTH password"),
    "timeout": Key(float, 30.0, "seconds per SMTP conversation"),
    "give_up_after": Key(str, "4d", "stop retrying a mail after this long (RFC 5321: 4-5 days)"),
    "lease": Key(int, 300, "seconds a worker owns a claimed mail"),
    "batch": Key(int, 50, "mails per delivery run"),
    "auto_response_limit": Key(int, 40, "auto-responses per sender address per 24 h"),
    "store_articles": Key(bool, False, "store each auto-response as an outgoing article on "
                                       "the ticket (replies find the ticket either way)"),
}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")


def parse_duration(text: str) -> timedelta:
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"bad duration {text!r} (use e.g. 90s, 30m, 12h, 4d)")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
    return timedelta(**{unit: int(m.group(1))})


def load_outbound(config, problems: list[Problem]) -> None:
    raw = config.raw.get("outbound") or {}
    settings = section(raw, OUTBOUND, problems, "outbound")
    if settings["tls"] not in ("none", "starttls", "tls"):
        problems.append(Problem(getattr(raw, "file", "ticketgate.yaml"),
                                raw.line_of("tls") if hasattr(raw, "line_of") else 0,
                                "outbound.tls must be none, starttls or tls"))
    try:
        settings["give_up_after_td"] = parse_duration(settings["give_up_after"])
    except ValueError as exc:
        problems.append(Problem(getattr(raw, "file", "ticketgate.yaml"),
                                raw.line_of("give_up_after") if hasattr(raw, "line_of") else 0,
                                f"outbound.give_up_after: {exc}"))
        settings["give_up_after_td"] = timedelta(days=4)
    config.outbound = settings


SECTION = ConfigSection("outbound", load_outbound)
