"""Spam verdicts left by an upstream filter (SpamAssassin, rspamd).

We never score mail ourselves: we read the headers the MTA's filter added. Only trust these
headers when the MTA strips them from incoming mail before the filter runs (otherwise a sender
can forge ``X-Spam-Flag: NO``; a forged ``YES`` only hurts the forger).

``check(mail)`` returns ``Verdict(name="spam", hit, reason, data)`` with
``data = {"engine": "spamassassin"|"rspamd"|None, "score": float|None,
"required": float|None, "action": str|None}``.
"""
from __future__ import annotations

import re

from filters.builtin.verdict import Verdict
from gateway.config.schema import Key
from gateway.parts import Prefilter
from gateway.mail import ParsedMail

NAME = "spam"

_YES = {"yes", "true", "1", "spam"}
_SCORE = re.compile(r"\b(?:score|hits)=(-?\d+(?:\.\d+)?)", re.I)
_REQUIRED = re.compile(r"\brequired=(-?\d+(?:\.\d+)?)", re.I)
# rspamd: "default: False [1.20 / 15.00];" or "default: True [16.1 / 15.0]"
_RSPAMD_RESULT = re.compile(r"\b\w+:\s*(true|false)\s*\[\s*(-?\d+(?:\.\d+)?)\s*/\s*(-?\d+(?:\.\d+)?)", re.I)
_RSPAMD_SPAM_ACTIONS = {"reject", "add header", "add_header", "rewrite subject", "rewrite_subject"}


def _first_word(value: str) -> str:
    return value.strip().split(None, 1)[0].strip(",;").lower() if value.strip() else ""


def _float(m: re.Match[str] | None) -> float | None:
    return float(m.group(1)) if m else None


def check(mail: ParsedMail) -> Verdict:
    """Spam verdict from SpamAssassin / rspamd headers (first decisive header wins)."""
    data: dict = {"engine": None, "score": None, "required": None, "action": None}

    status = mail.header("X-Spam-Status")
    if status is not None:
        data.update(engine="spamassassin", score=_float(_SCORE.search(status)),
                    required=_float(_REQUIRED.search(status)))
    flag = mail.header("X-Spam-Flag")
    if flag is not None and _first_word(flag) in _YES:
        data["engine"] = data["engine"] or "spamassassin"
        return Verdict(NAME, True, f"X-Spam-Flag: {flag.strip()}", data)
    if status is not None and _first_word(status) in _YES:
        return Verdict(NAME, True, f"X-Spam-Status: {status.strip()[:80]}", data)

    action = mail.header("X-Rspamd-Action")
    if action is not None:
        data.update(engine="rspamd", action=action.strip().lower())
        if data["action"] in _RSPAMD_SPAM_ACTIONS:
            return Verdict(NAME, True, f"X-Rspamd-Action: {action.strip()}", data)
    result = mail.header("X-Spamd-Result")
    if result is not None:
        m = _RSPAMD_RESULT.search(result)
        if m:
            data.update(engine="rspamd", score=float(m.group(2)), required=float(m.group(3)))
            if m.group(1).lower() == "true":
                return Verdict(NAME, True, f"X-Spamd-Result: {result.strip()[:80]}", data)
    rspamd_spam = mail.header("X-Spam")  # rspamd's milter header, "Yes" when add_header fired
    if rspamd_spam is not None and _first_word(rspamd_spam) in _YES:
        data["engine"] = data["engine"] or "rspamd"
        return Verdict(NAME, True, f"X-Spam: {rspamd_spam.strip()}", data)

    return Verdict(NAME, False, "", data)


def _check(mail, envelope, settings, config) -> Verdict:
    verdict = check(mail)
    if not verdict.hit:
        return verdict
    action, data = settings["action"], dict(verdict.data)
    if action == "drop":
        data["ignore"] = True
    elif action == "queue" and settings["queue"]:
        data["settings"] = {"set": {"queue": settings["queue"]}}
    return Verdict(verdict.name, True, f"{verdict.reason} (action: {action})", data)


def _validate(settings, config) -> list:
    if settings["action"] == "queue" and not settings["queue"]:
        return [("action", "spam action 'queue' needs a queue")]
    if settings["queue"] and settings["queue"] not in config.queues:
        return [("queue", f"unknown queue {settings['queue']!r}")]
    return []


PREFILTER = Prefilter(
    NAME, _check, doc="spam verdicts of an upstream SpamAssassin or rspamd",
    settings={"action": Key(str, "mark", "what a spam verdict does: mark (flag the article) | "
                                         "queue (put a new ticket in `queue`) | drop",
                            choices=("mark", "queue", "drop")),
              "queue": Key(str, None, "queue for spam when action is queue")},
    silences_auto_response=True, validate=_validate)
