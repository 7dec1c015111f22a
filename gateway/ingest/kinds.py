"""The daemon's kinds of ingest source, in the order the composition root starts them
(``SOURCE_KINDS``): SMTP/LMTP listeners and IMAP mail accounts. The builders import their protocol modules when called,
so building the app (a pipe ``ingest``) never loads aiosmtpd or imapclient."""
from __future__ import annotations

from gateway.ingest.source import SourceKind


def _listeners(config, context):
    from gateway.ingest.smtp import build_listeners  # start-up time: only the daemon needs it

    return build_listeners(config, context)


def _accounts(config, context):
    from gateway.ingest.imap import build_accounts  # start-up time: only the daemon needs it

    return build_accounts(config, context)


# Listeners keep their sockets over a reload (recipients are checked against the new config).
LISTENERS = SourceKind("smtp", _listeners, status_key="listeners", on_reload="keep",
                       identity=lambda l: (l.conf.name, l.conf.host, l.conf.port,
                                           l.conf.protocol))
MAIL_ACCOUNTS = SourceKind("imap", _accounts, status_key="mail_accounts", on_reload="restart")

SOURCE_KINDS = (LISTENERS, MAIL_ACCOUNTS)
