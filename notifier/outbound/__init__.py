"""The durable outbound queue, split as Postfix splits it: ``config`` (the ``outbound:``
settings), ``queue`` (rows added in the event's transaction; no network), ``delivery`` (the
sender worker: claim with a lease, SMTP to the smarthost, record, retry with backoff)."""
