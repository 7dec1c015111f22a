"""Render budget: a template that loops or builds a huge value is cut off (time, sizes, output),
the mail still becomes a ticket and the history says why nothing was sent (issue 11 point 9)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.store.models import Ticket
from notifier.templates import RENDER_SECONDS, RenderError, compile_text, environment
from tests.mails import make_mail
from tests.test_notifier import run, sent_kinds, set_outbound

HOSTILE = {
    "repeat": ("{{ 'x' * 10**9 }}", "would build more than"),
    "repeat-literal": ("{{ 'x' * 1000000000 }}", "would build more than"),
    "power": ("{{ 2 ** 100000000 }}", "'**' result too large"),
    "filter-width": ("{{ 'x'|center(1000000000) }}", "larger than"),
    "percent-width": ("{{ '%0999999999d' % 1 }}", "format width"),
    "format-width": ("{{ '{:>999999999}'.format(1) }}", "format width"),
    "big-range": ("{% for i in range(100000) %}{% endfor %}", "range() of more than"),
    "nested-loop": ("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}"
                    "{% endfor %}", "render took longer"),
    "output": ("{% for i in range(10000) %}{{ 'x' * 100000 }}{% endfor %}",
               "rendered text longer"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_template_is_cut_off(case):
    text, why = HOSTILE[case]
    start = time.perf_counter()
    template = compile_text(environment(Path(".")), "evil.txt", "Subject: hi\n\n" + text)
    assert time.perf_counter() - start < 1        # nothing huge is folded at load time
    with pytest.raises(RenderError) as err:
        template.render(ticket={"number": "1"})
    assert time.perf_counter() - start < RENDER_SECONDS + 3
    assert why in str(err.value)


def test_ordinary_templates_still_render():
    template = compile_text(environment(Path(".")), "ok.txt",
                            "Subject: {{ ticket.number }} {{ '%s'|format('ok') }}\n\n"
                            "{% for i in range(3) %}{{ i }}{% endfor %} {{ 'ab' * 2 }} "
                            "{{ '{:>5}'.format('x') }} {{ 2 ** 10 }} {{ 'y'|center(5) }} "
                            "{{ 'v1.23456 %s' % 'x' }}\n")
    assert template.render(ticket={"number": "42"}) == ("42 ok",
                                                        "012 abab     x 1024   y   v1.23456 x\n")


def test_auto_reply_bomb_never_fails_the_mail(conf_dir, make_app, smtp_sink):
    """{{ 'x' * 10**9 }} used 3.9 GB; now the ticket is stored and the history says why no
    auto reply went out."""
    set_outbound(conf_dir, smtp_sink[0].port)
    (conf_dir / "templates" / "auto_reply.txt").write_text("Subject: hi\n\n{{ 'x' * 10**9 }}\n")
    app = make_app()
    start = time.perf_counter()
    out = run(app, make_mail(subject="still a ticket"))
    assert time.perf_counter() - start < 10
    assert out.status == "done" and out.action == "new_ticket"
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == out.ticket_number)).scalar_one()
        assert any("auto_reply not sent" in h.message and "would build more than" in h.message
                   for h in t.history)
    assert "auto_reply" not in sent_kinds(app)
