"""The outbound queue's part of ticketgate.yaml (``outbound:``): the smarthost, retries and
leases, and the auto-response limit. Every key with its type, default and doc."""
from __future__ import annotations

import re
from datetime import timedelta

from gateway.config import ConfigSection, Problem
from gateway.config.schema import Key, port, positive

OUTBOUND = {
    "host": Key(str, "127.0.0.1", "smarthost"),
    "port": Key(int, 25, "smarthost port", check=port),
    "tls": Key(str, "none", "none | starttls | tls", choices=("none", "starttls", "tls")),
    "username": Key(str, None, "SMTP AUTH user"),
    "password_env": Key(str, None, "environment variable holding the SMTP AUTH password"),
    "password_file": Key(str, None, "file holding the SMTP AUTH password"),
    "timeout": Key(float, 30.0, "seconds per SMTP conversation", check=positive),
    "give_up_after": Key(str, "4d", "stop retrying a mail after this long (RFC 5321: 4-5 days)",
                         check=lambda text: None if _DURATION.match(text) else
                         "is not a duration (use e.g. 90s, 30m, 12h, 4d)"),
    "lease": Key(int, 300, "seconds a worker owns a claimed mail", check=positive),
    "batch": Key(int, 50, "mails per delivery run", check=positive),
    "auto_response_limit": Key(int, 40, "no auto-response to an address that got this many "
                                        "mails (any kind) in 24 h"),
    "ticket_mail_limit": Key(int, 20, "no reply/notification to an address that got this "
                                      "many mails about the ticket in 24 h (loops)"),
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
    """``config.outbound``: ticketgate.yaml ``outbound:`` as checked against OUTBOUND."""
    config.outbound = dict(config.settings["outbound"],
                           give_up_after_td=parse_duration(config.settings["outbound"]
                                                           ["give_up_after"]))


SECTION = ConfigSection("outbound", load_outbound, keys=(("ticketgate.yaml", {
    "outbound": Key(dict, dict, "smarthost for outgoing mail", keys=OUTBOUND)}),))
