"""Who our mail comes from: the one sender identity for every mail of a queue (auto-responses,
notifications, agent replies)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Sender:
    address: str
    name: str


def system_sender(config, queue_name: str) -> Sender | None:
    """The system address mail of this queue comes from (queue's own, else one routed to it,
    else the default queue's, else the first)."""
    queue = config.queues.get(queue_name)
    if queue is not None and queue.system_address:
        sa = config.system_address(queue.system_address)
        return Sender(queue.system_address, sa.name if sa else "")
    for wanted in (queue_name, config.default_queue):
        for sa in config.system_addresses:
            if sa.queue == wanted:
                return Sender(sa.address, sa.name)
    if config.system_addresses:
        sa = config.system_addresses[0]
        return Sender(sa.address, sa.name)
    return None
