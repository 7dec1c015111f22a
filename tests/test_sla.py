"""SLAs (conf/sla.yaml): escalation times by customer/type override the queue's; a filter can
pin one per ticket; config errors name file and line."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from gateway.app import load_config
from gateway.config import ConfigError
from gateway.store.models import Ticket
from gateway.tickets import touch
from tests.mails import make_mail


def minutes(delta: timedelta) -> float:
    return round(delta.total_seconds() / 60, 1)


def test_sla_by_customer_overrides_queue_times(app, ingest):
    out = ingest(make_mail(subject="Gold"), queue="Network Outage")
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == out.ticket_number)).scalar_one()
        assert minutes(t.first_response_due - t.created) == 30          # the queue's
        t.customer_id = "ACME"
        touch(t, app.config)
        assert minutes(t.first_response_due - t.created) == 60          # SLA Gold, 24x7
        assert minutes(t.first_response_notify - t.created) == 48        # 80 %


def test_filter_pins_an_sla(conf_dir, make_app):
    (conf_dir / "filters.d" / "90-sla.yaml").write_text(
        "- name: pin-gold\n  match: {subject: 'URGENT'}\n"
        "  set: {queue: Network Outage, dynamic_fields: {SLA: Gold}}\n")
    app = make_app()
    from gateway.intake import accept
    from gateway.processing import process_inbound

    out = process_inbound(app.store, app.pipeline, accept(
        app.store, make_mail(subject="URGENT: all down")).inbound_id)
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == out.ticket_number)).scalar_one()
        assert t.dynamic_fields["SLA"] == "Gold"
        assert minutes(t.first_response_due - t.created) == 60


@pytest.mark.parametrize("text,message", [
    ("slas:\n  - name: X\n    match: {colour: red}\n", "sla.yaml:3: SLA 'X': cannot match on"),
    ("slas:\n  - name: X\n    match: {type: '(('}\n", "sla.yaml:3: SLA 'X': bad regex"),
    ("slas:\n  - name: X\n    calendar: nowhere\n", "sla.yaml:3: SLA 'X': unknown calendar"),
    ("slas:\n  - name: X\n    escalation: {first_response: -5}\n",
     "sla.yaml:3: SLA 'X': escalation:"),
    ("slas:\n  - name: X\n  - name: X\n", "sla.yaml:3: SLA 'X' defined twice"),
    ("slas: {}\n", "must have 'slas:' with a list"),
])
def test_sla_config_errors(conf_dir, text, message):
    (conf_dir / "sla.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(conf_dir)
    assert message in str(err.value)
