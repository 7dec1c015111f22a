"""Escalation: working time, calendars, SLAs and deadlines, in one place.

- ``calendars``: working-time arithmetic on a business-hours calendar (add, between).
- ``calendar_config``: parsing and checking one calendar of ``conf/calendars.yaml``.
- ``slas``: service level agreements from ``conf/sla.yaml`` and which one a ticket gets.
- ``deadlines``: pure deadline computation (escalation times, the six instants, due events).
- ``clock``: a stored ticket's clock: its deadline columns and the stop/resume of solution time.
"""
