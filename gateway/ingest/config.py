"""Ingest sources' part of ticketgate.yaml: ``listeners`` (SMTP/LMTP) and ``mail_accounts`` (IMAP).

Both are lists of mappings whose keys (LISTENER_KEYS, ACCOUNT_KEYS) the schema checks; this
section adds what needs the rest of the config (queues, files that must exist, names and
ports given twice, which settings go together) and stores ``config.listeners`` and
``config.mail_accounts``, so ``ticketgate check-config`` and the daemon report the same errors.
Secrets (passwords, tokens) are never read at load time and never appear in logs or status.
"""
from __future__ import annotations

import os
from pathlib import Path

from gateway.config import ConfigSection, Problem
from gateway.config.schema import REQUIRED, Key, fields_from, port, positive

PROTOCOLS = ("smtp", "lmtp")
TLS_MODES = ("imaps", "starttls", "none")


def _after(value: str) -> str | None:
    if value in ("seen", "delete") or (value.startswith("move:") and value[5:].strip()):
        return None
    return "must be seen, delete or move:FOLDER"


def _folders(value: list) -> str | None:
    if value and all(isinstance(f, str) and f for f in value):
        return None
    return "must be a list of folder names"


LISTENER_KEYS = {
    "name": Key(str, REQUIRED, "listener name; the mail's source is smtp:NAME / lmtp:NAME",
                example="smtp"),
    "protocol": Key(str, "smtp", "smtp (direct delivery, submission) or lmtp (from Postfix)",
                    check=lambda v: None if v in PROTOCOLS else "must be smtp or lmtp"),
    "host": Key(str, "127.0.0.1", "address to listen on"),
    "port": Key(int, REQUIRED, "TCP port", check=port, example=2525),
    "trusted": Key(bool, False, "honour X-Ticket-* control headers of mail from this listener"),
    "trust_authentication_results": Key(bool, False, "the MTA in front removes foreign "
                                                     "Authentication-Results (agent proof)"),
    "queue": Key(str, None, "dispatch queue for mail from this listener (filters may override)"),
    "max_message_size": Key(int, 26214400, "largest mail in bytes (552 above; EHLO SIZE)",
                            check=positive),
    "catch_all_domains": Key(list, list, "domains whose every address is accepted (else only "
                                         "system addresses: no open relay)"),
    "tls_cert": Key(str, None, "PEM certificate for STARTTLS (with tls_key)"),
    "tls_key": Key(str, None, "PEM private key for STARTTLS"),
    "require_tls": Key(bool, False, "refuse MAIL before STARTTLS"),
    "auth_users_file": Key(str, None, "user:password lines; enables SMTP AUTH (after STARTTLS)"),
    "auth_required": Key(bool, False, "refuse MAIL before AUTH"),
    "max_connections": Key(int, 100, "concurrent connections; more get 421", check=positive),
    "max_recipients": Key(int, 100, "recipients per mail (452 above)", check=positive),
    "max_messages_per_connection": Key(int, 1000, "mails per connection (421 above)",
                                       check=positive),
    "timeout": Key(int, 300, "idle seconds before a connection is dropped", check=positive),
    # defences against slow clients (slowloris), see gateway/ingest/smtp.py Gate
    "max_connections_per_ip": Key(int, 50, "concurrent connections from one IP address; "
                                           "more get 421", check=positive),
    "stress_timeout": Key(int, 10, "idle seconds before DATA after which a client gives up "
                                   "its slot when the listener is 3/4 full or a new client "
                                   "needs it", check=positive),
    "min_data_rate": Key(int, 500, "bytes per second a client must keep up in DATA (after "
                                   "10 s); slower ones get 421", check=positive),
}
ACCOUNT_KEYS = {
    "name": Key(str, REQUIRED, "account name; the mail's source is imap:NAME",
                example="helpdesk"),
    "host": Key(str, REQUIRED, "IMAP server", example="imap.example.com"),
    "port": Key(int, None, "default 993 (imaps) or 143", check=port),
    "tls": Key(str, "imaps", "imaps | starttls | none", choices=TLS_MODES),
    "tls_cafile": Key(str, None, "CA bundle to verify the server (default: system CAs)"),
    "user": Key(str, REQUIRED, "login", example="helpdesk@example.com"),
    "password_file": Key(str, None, "file holding the password (first line)"),
    "password_env": Key(str, None, "environment variable holding the password"),
    "oauth2_token_command": Key(str, None, "command printing an OAuth2 access token (XOAUTH2)"),
    "oauth2_token_file": Key(str, None, "file holding an OAuth2 access token (XOAUTH2)"),
    "folders": Key(list, lambda: ["INBOX"], "folders to fetch from", check=_folders),
    "after": Key(str, "seen", "after a mail is stored: seen (flag \\Seen) | move:FOLDER | "
                              "delete", check=_after),
    "queue": Key(str, None, "dispatch queue for mail from this account"),
    "trusted": Key(bool, False, "honour X-Ticket-* control headers"),
    "poll_interval": Key(int, 60, "seconds between polls when IDLE is not offered",
                         check=positive),
    "idle": Key(bool, True, "use IMAP IDLE when the server offers it"),
    "batch_size": Key(int, 100, "messages fetched per round-trip", check=positive),
    "timeout": Key(int, 60, "socket timeout in seconds", check=positive),
}
SECRETS = ("password_file", "password_env", "oauth2_token_command", "oauth2_token_file")


@fields_from(LISTENER_KEYS)
class ListenerConf:
    """One SMTP/LMTP listener (fields: the keys of LISTENER_KEYS)."""

    def __post_init__(self):
        self.catch_all_domains = [str(d).lower().lstrip("@") for d in self.catch_all_domains or []]

    @property
    def source(self) -> str:
        return f"{self.protocol}:{self.name}"


@fields_from(ACCOUNT_KEYS)
class AccountConf:
    """One IMAP mail account (fields: the keys of ACCOUNT_KEYS)."""

    @property
    def source(self) -> str:
        return f"imap:{self.name}"

    @property
    def real_port(self) -> int:
        return self.port or (993 if self.tls == "imaps" else 143)

    def __repr__(self) -> str:  # never show secrets' locations' contents; names are fine
        return f"AccountConf({self.name!r}, {self.user}@{self.host}:{self.real_port})"


def _line(item, key=None) -> int:
    return item.line_of(key) if key is not None else item.line


def load_listeners(config, problems: list) -> None:
    config.listeners = []
    seen_names, seen_ports = set(), set()
    for item in config.settings["listeners"]:
        lc = ListenerConf(**item)
        file, what = item.file, f"listener {lc.name!r}"
        config.listeners.append(lc)
        if lc.name in seen_names:
            problems.append(Problem(file, _line(item, "name"), f"{what} defined twice"))
        seen_names.add(lc.name)
        if lc.port is not None and (lc.host, lc.port) in seen_ports:
            problems.append(Problem(file, _line(item, "port"), f"{what}: {lc.host}:{lc.port} "
                                                               f"used twice"))
        seen_ports.add((lc.host, lc.port))
        if bool(lc.tls_cert) != bool(lc.tls_key):
            problems.append(Problem(file, _line(item, "tls_cert" if lc.tls_cert else "tls_key"),
                                    f"{what}: tls_cert and tls_key go together"))
        _check_files(config, lc, ("tls_cert", "tls_key", "auth_users_file"), file, item, what,
                     problems)
        if (lc.require_tls or lc.auth_users_file) and not lc.tls_cert:
            problems.append(Problem(file, _line(item, "require_tls" if lc.require_tls else
                                                "auth_users_file"),
                                    f"{what}: needs tls_cert/tls_key (AUTH only after "
                                    f"STARTTLS)"))
        if lc.auth_required and not lc.auth_users_file:
            problems.append(Problem(file, _line(item, "auth_required"),
                                    f"{what}: auth_required needs auth_users_file"))
        _check_queue(config, lc, file, item, what, problems)


def load_accounts(config, problems: list) -> None:
    config.mail_accounts = []
    names = set()
    for item in config.settings["mail_accounts"]:
        ac = AccountConf(**item)
        file, what = item.file, f"mail account {ac.name!r}"
        config.mail_accounts.append(ac)
        if ac.name in names:
            problems.append(Problem(file, _line(item, "name"), f"{what} defined twice"))
        names.add(ac.name)
        if len([k for k in SECRETS if getattr(ac, k)]) != 1:
            problems.append(Problem(file, _line(item), f"{what}: give exactly one of "
                                                       f"{', '.join(SECRETS)}"))
        _check_files(config, ac, ("password_file", "oauth2_token_file", "tls_cafile"), file,
                     item, what, problems)
        _check_queue(config, ac, file, item, what, problems)


def _check_files(config, obj, keys, file, item, what, problems):
    """Paths in ``keys`` are made absolute (relative to conf/) and must exist."""
    for key in keys:
        path = getattr(obj, key)
        if path:
            path = str(_resolve(config, path))
            setattr(obj, key, path)
            if not os.path.isfile(path):
                problems.append(Problem(file, _line(item, key),
                                        f"{what}: {key} {path} does not exist"))


def _check_queue(config, obj, file, item, what, problems):
    if obj.queue and config.queues and obj.queue not in config.queues:
        problems.append(Problem(file, _line(item, "queue"), f"{what}: unknown queue "
                                                            f"{obj.queue!r}"))


def _resolve(config, path: str) -> Path:
    return (Path(config.dir) / os.path.expanduser(path)).resolve()


def load(config, problems: list) -> None:
    load_listeners(config, problems)
    load_accounts(config, problems)


_LOOPBACK = ("127.", "::1", "localhost")


def trust_warnings(config) -> list[str]:
    """What ``check-config`` warns about (not errors: only the admin knows the MTA in front):
    sources that trust what any sender could write.

    - a listener with ``trusted: yes`` that is not a loopback LMTP listener or a loopback one
      with ``auth_required`` (mail reaching it need not have passed an MTA that strips
      X-Ticket-*), and every trusted mail account (whoever can mail the mailbox);
    - a listener with ``trust_authentication_results: yes`` not on loopback;
    - agent_auth method ``authentication_results`` while no listener trusts the header.
    """
    out = []
    for lc in getattr(config, "listeners", []):
        local = str(lc.host).startswith(_LOOPBACK)
        where = f"listener {lc.name!r} ({lc.protocol} on {lc.host}:{lc.port})"
        if lc.trusted and not (local and (lc.protocol == "lmtp" or lc.auth_required)):
            out.append(f"{where}: trusted: yes honours X-Ticket-* control headers from every "
                       f"client that reaches it; trust only a loopback LMTP listener (or one "
                       f"with auth_required) fed by an MTA whose header_checks remove them "
                       f"(docs/daemon.md)")
        if lc.trust_authentication_results and not local:
            out.append(f"{where}: trust_authentication_results: yes on a non-loopback "
                       f"address: a client that connects directly can forge agent proofs")
    for ac in getattr(config, "mail_accounts", []):
        if ac.trusted:
            out.append(f"mail account {ac.name!r}: trusted: yes honours X-Ticket-* control "
                       f"headers from everyone who can mail {ac.user}: the MTA delivering "
                       f"to the mailbox must remove them (docs/daemon.md)")
    auth = getattr(config, "agent_auth", None)
    if auth is not None and "authentication_results" in auth.methods and \
            not any(lc.trust_authentication_results for lc in getattr(config, "listeners", [])):
        out.append("agent_auth: method authentication_results proves nothing: no listener has "
                   "trust_authentication_results: yes (a pipe needs ingest "
                   "--trust-authentication-results)")
    return out


SECTION = ConfigSection("ingest", load, keys=(("ticketgate.yaml", {
    "listeners": Key(list, list, "SMTP/LMTP listeners of `ticketgate run` (docs/daemon.md)",
                     each=LISTENER_KEYS, item="listener"),
    "mail_accounts": Key(list, list, "IMAP mail accounts to poll (docs/daemon.md)",
                         each=ACCOUNT_KEYS, item="mail account")}),))
