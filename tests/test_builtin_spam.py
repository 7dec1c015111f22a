"""Unit tests for filters.builtin.spam (SpamAssassin / rspamd headers)."""
from __future__ import annotations

import pytest

from filters.builtin import spam
from gateway.mail import parse


def mail(headers: str, body: str = "Hello\n") -> bytes:
    head = "From: a@example.com\nTo: help@example.org\nSubject: hi\n" + headers
    return (head.rstrip("\n") + "\n\n" + body).replace("\n", "\r\n").encode()


@pytest.mark.parametrize("headers, engine", [
    ("X-Spam-Flag: YES\n", "spamassassin"),
    ("X-Spam-Status: Yes, score=7.3 required=5.0 tests=BAYES_99\n", "spamassassin"),
    ("X-Rspamd-Action: reject\n", "rspamd"),
    ("X-Rspamd-Action: add header\n", "rspamd"),
    ("X-Spamd-Result: default: True [16.10 / 15.00];\n BAYES_SPAM(5.10)[99.99%]\n", "rspamd"),
    ("X-Spam: Yes\n", "rspamd"),
])
def test_spam_headers_hit(headers, engine):
    v = spam.check(parse(mail(headers)))
    assert v.hit and v.name == "spam"
    assert v.data["engine"] == engine
    assert v.reason.split(":")[0] in headers


@pytest.mark.parametrize("headers", [
    "",
    "X-Spam-Flag: NO\n",
    "X-Spam-Status: No, score=-1.2 required=5.0 tests=ALL_TRUSTED\n",
    "X-Rspamd-Action: no action\n",
    "X-Rspamd-Action: greylist\n",
    "X-Spamd-Result: default: False [1.20 / 15.00];\n",
    "X-Spam: No\n",
])
def test_ham_headers_miss(headers):
    v = spam.check(parse(mail(headers)))
    assert not v.hit and v.reason == ""


def test_scores_are_reported():
    v = spam.check(parse(mail("X-Spam-Status: Yes, score=7.3 required=5.0 tests=BAYES_99\n")))
    assert (v.data["score"], v.data["required"]) == (7.3, 5.0)
    v = spam.check(parse(mail("X-Spamd-Result: default: False [1.20 / 15.00];\n")))
    assert (v.data["score"], v.data["required"]) == (1.2, 15.0)


def test_body_text_is_not_a_verdict():
    assert not spam.check(parse(mail("", "X-Spam-Flag: YES\nThis is spam\n"))).hit
