"""The auto-response types (as OTRS): one row each. A queue names a template per type in
queues.yaml ``auto_responses``; the pipeline requests the type that belongs to what it did
with a mail (gateway/routing.py); the loop guard counts them (notifier/loopguard.py).
To add a type: one row here (and a template in conf/)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AutoResponseType:
    name: str      # the key in queues.yaml auto_responses
    action: str    # the pipeline action it answers (gateway.pipeline.Decision.action)
    doc: str


AUTO_RESPONSES = (
    AutoResponseType("auto_reply", "new_ticket", "a new ticket was opened"),
    AutoResponseType("auto_reject", "reject", "a follow-up to a closed ticket was rejected"),
    AutoResponseType("auto_follow_up", "follow_up", "a follow-up was added to a ticket"),
    AutoResponseType("auto_reply_new_ticket", "new_ticket_closed",
                     "a follow-up to a closed ticket opened a new ticket instead"),
)
AUTO_RESPONSE_TYPES = tuple(t.name for t in AUTO_RESPONSES)
FOR_ACTION = {t.action: t.name for t in AUTO_RESPONSES}
