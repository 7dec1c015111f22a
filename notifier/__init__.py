"""Everything ticketgate sends: auto-responses, agent notifications, escalation events and
timers, all through the durable outbound queue. Importing this package registers its config
loaders and its after-apply hooks; ``JOBS`` lists its periodic jobs for the daemon."""
from gateway.followup import MESSAGE_ID_LOOKUPS
from notifier import autoresponse, escalation_watch, notifications, outbox, templates, timers

if outbox.ticket_for_message_id not in MESSAGE_ID_LOOKUPS:
    MESSAGE_ID_LOOKUPS.append(outbox.ticket_for_message_id)

# (name, func(app), seconds) for the daemon's scheduler (gateway.daemon collects them)
JOBS = [("outbound sender", outbox.job, 10.0), ("escalation scan", escalation_watch.job, 60.0),
        ("ticket timers", timers.job, 60.0)]

__all__ = ["autoresponse", "escalation_watch", "notifications", "outbox", "templates", "timers"]
