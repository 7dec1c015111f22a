"""Everything ticketgate sends: auto-responses, agent notifications, escalation events and
timers, all through the durable outbound queue.

Importing this package wires nothing: ``gateway.app`` (the composition root) takes the parts
listed here and puts them in place, in these orders."""
from gateway.parts import AfterApply, Job, MessageIdLookup
from notifier import agent_reply, autoresponse, escalation_watch, notifications, templates, timers
from notifier.outbound import config as outbound_config
from notifier.outbound import delivery, queue

# Parts of conf/ this package reads, loaded in this order (templates need the queues).
CONFIG_SECTIONS = (outbound_config.SECTION, templates.SECTION)

# Run after a mail is applied, in its transaction: an agent's reply to the customer first;
# then the auto-response is queued before the agents are notified (the notification then
# lists it in the ticket's history).
AFTER_APPLY = (AfterApply("agent reply", agent_reply.send_agent_reply),
               AfterApply("auto response", autoresponse.send_auto_response),
               AfterApply("agent notifications", notifications.notify_agents))

# Replies to our notifications (not stored as articles) still find their ticket.
MESSAGE_ID_LOOKUPS = (MessageIdLookup("outbound queue", queue.ticket_for_message_id),)

JOBS = (Job("outbound sender", delivery.job, 10.0), Job("escalation scan", escalation_watch.job, 60.0),
        Job("ticket timers", timers.job, 60.0))
