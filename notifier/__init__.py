"""Everything ticketgate sends: auto-responses, agent notifications, escalation events and
timers, all through the durable outbound queue. Importing this package registers its config
loaders, its after-apply hooks and (when the daemon is present) its periodic jobs."""
from gateway.followup import MESSAGE_ID_LOOKUPS
from notifier import autoresponse, escalation_watch, notifications, outbox, templates, timers

if outbox.ticket_for_message_id not in MESSAGE_ID_LOOKUPS:
    MESSAGE_ID_LOOKUPS.append(outbox.ticket_for_message_id)

# (name, func(app), seconds) for the daemon's scheduler
JOBS = [("outbound sender", outbox.job, 10.0), ("escalation scan", escalation_watch.job, 60.0),
        ("ticket timers", timers.job, 60.0)]

try:  # the daemon may not be part of this build
    from gateway import daemon as _daemon
except ImportError:
    _daemon = None
if _daemon is not None and hasattr(_daemon, "register_job"):
    for _name, _func, _seconds in JOBS:
        if all(n != _name for n, _, _ in _daemon.JOBS):
            _daemon.register_job(_name, _func, _seconds)

__all__ = ["autoresponse", "escalation_watch", "notifications", "outbox", "templates", "timers"]
