"""The exit codes of ``ticketgate``: the one sysexits(3) table, which MTAs and systemd read.

No other module defines an exit number; commands return these names.
"""

EX_OK = 0            # done; for ``ingest``: the mail is committed, the MTA may forget it
EX_USAGE = 64        # the command line is wrong (unknown option, missing argument, empty stdin)
EX_DATAERR = 65      # the command names what it cannot act on (``outbox retry`` of a sent mail)
EX_NOINPUT = 66      # what was asked for is not there (``show`` of an unknown ticket, an unreadable
#                      ``test-mail`` file)
EX_UNAVAILABLE = 69  # the daemon is not running (``status``)
EX_SOFTWARE = 70     # a bug of ours that a command notices itself (none does today; an
#                      exception nobody catches exits 1)
EX_TEMPFAIL = 75     # our own trouble, try again later (config unreadable at ``ingest``, database
#                      locked or down): the MTA keeps the mail, systemd restarts ``run``
EX_CONFIG = 78       # the configuration is wrong (``check-config``, ``run``): restarting won't help
