"""The daemon's part of ticketgate.yaml: ``listeners`` (SMTP/LMTP) and ``mail_accounts`` (IMAP).

Both are lists of mappings; every key is checked here (type, allowed values, references to
queues, files that must exist) and each problem names file and line. Registered with the
config loader on import, so ``ticketgate check-config`` and the daemon report the same errors.
Secrets (passwords, tokens) are never read at load time and never appear in logs or status.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from gateway.config import ConfigSection, Problem

PROTOCOLS = ("smtp", "lmtp")
TLS_MODES = ("imaps", "starttls", "none")

# key: (type, default, doc) -- REQUIRED as default means the key must be present
REQUIRED = object()
LISTENER_KEYS = {
    "name": (str, REQUIRED, "listener name; the mail's source is smtp:NAME / lmtp:NAME"),
    "protocol": (str, "smtp", "smtp (direct delivery, submission) or lmtp (from Postfix)"),
    "host": (str, "127.0.0.1", "address to listen on"),
    "port": (int, REQUIRED, "TCP port"),
    "trusted": (bool, False, "honour X-Ticket-* control headers of mail from this listener"),
    "queue": (str, None, "dispatch queue for mail from this listener (filters may override)"),
    "max_message_size": (int, 26214400, "largest mail in bytes (552 above; EHLO SIZE)"),
    "catch_all_domains": (list, list, "domains whose every address is accepted (else only "
                                      "system addresses: no open relay)"),
    "tls_cert": (str, None, "PEM certificate for STARTTLS (with tls_key)"),
    "tls_key": (str, None, "PEM private key for STARTTLS"),
    "require_tls": (bool, False, "refuse MAIL before STARTTLS"),
    "auth_users_file": (str, None, "user:password lines; enables SMTP AUTH (after STARTTLS)"),
    "auth_required": (bool, False, "refuse MAIL before AUTH"),
    "max_connections": (int, 100, "concurrent connections; more get 421"),
    "max_recipients": (int, 100, "recipients per mail (452 above)"),
    "max_messages_per_connection": (int, 1000, "mails per connection (421 above)"),
    "timeout": (int, 300, "idle seconds before a connection is dropped"),
}
ACCOUNT_KEYS = {
    "name": (str, REQUIRED, "account name; the mail's source is imap:NAME"),
    "host": (str, REQUIRED, "IMAP server"),
    "port": (int, None, "default 993 (imaps) or 143"),
    "tls": (str, "imaps", "imaps | starttls | none"),
    "tls_cafile": (str, None, "CA bundle to verify the server (default: system CAs)"),
    "user": (str, REQUIRED, "login"),
    "password_file": (str, None, "file holding the password (first line)"),
    "password_env": (str, None, "environment variable holding the password"),
    "oauth2_token_command": (str, None, "command printing an OAuth2 access token (XOAUTH2)"),
    "oauth2_token_file": (str, None, "file holding an OAuth2 access token (XOAUTH2)"),
    "folders": (list, lambda: ["INBOX"], "folders to fetch from"),
    "after": (str, "seen", "after a mail is stored: seen (flag \\Seen) | move:FOLDER | delete"),
    "queue": (str, None, "dispatch queue for mail from this account"),
    "trusted": (bool, False, "honour X-Ticket-* control headers"),
    "poll_interval": (int, 60, "seconds between polls when IDLE is not offered"),
    "idle": (bool, True, "use IMAP IDLE when the server offers it"),
    "batch_size": (int, 100, "messages fetched per round-trip"),
    "timeout": (int, 60, "socket timeout in seconds"),
}


@dataclass
class ListenerConf:
    name: str
    protocol: str = "smtp"
    host: str = "127.0.0.1"
    port: int = 0
    trusted: bool = False
    queue: str | None = None
    max_message_size: int = 26214400
    catch_all_domains: list = field(default_factory=list)
    tls_cert: str | None = None
    tls_key: str | None = None
    require_tls: bool = False
    auth_users_file: str | None = None
    auth_required: bool = False
    max_connections: int = 100
    max_recipients: int = 100
    max_messages_per_connection: int = 1000
    timeout: int = 300

    def __post_init__(self):
        self.catch_all_domains = [str(d).lower().lstrip("@") for d in self.catch_all_domains or []]

    @property
    def source(self) -> str:
        return f"{self.protocol}:{self.name}"


@dataclass
class AccountConf:
    name: str
    host: str
    user: str
    port: int | None = None
    tls: str = "imaps"
    tls_cafile: str | None = None
    password_file: str | None = None
    password_env: str | None = None
    oauth2_token_command: str | None = None
    oauth2_token_file: str | None = None
    folders: list = field(default_factory=lambda: ["INBOX"])
    after: str = "seen"
    queue: str | None = None
    trusted: bool = False
    poll_interval: int = 60
    idle: bool = True
    batch_size: int = 100
    timeout: int = 60

    @property
    def source(self) -> str:
        return f"imap:{self.name}"

    @property
    def real_port(self) -> int:
        return self.port or (993 if self.tls == "imaps" else 143)

    def __repr__(self) -> str:  # never show secrets' locations' contents; names are fine
        return f"AccountConf({self.name!r}, {self.user}@{self.host}:{self.real_port})"


def _line(item, key=None) -> int:
    if key is not None and hasattr(item, "line_of"):
        return item.line_of(key)
    return getattr(item, "line", 0)


def _parse(items, keys, cls, what, problems, default_file):
    out = []
    for index, item in enumerate(items or []):
        file = getattr(item, "file", default_file)
        if not isinstance(item, dict):
            problems.append(Problem(getattr(items, "file", default_file),
                                    (getattr(items, "item_lines", None) or [0] * (index + 1))[index],
                                    f"{what}[{index}] must be a mapping"))
            continue
        values, bad = {}, False
        for key in item:
            if key not in keys:
                problems.append(Problem(file, _line(item, key),
                                        f"{what}: unknown key {key!r} (keys: {', '.join(keys)})"))
        for key, (typ, default, _doc) in keys.items():
            if key not in item or item[key] is None:
                if default is REQUIRED:
                    problems.append(Problem(file, _line(item), f"{what}[{index}]: {key!r} is "
                                                               f"required"))
                    bad = True
                    continue
                values[key] = default() if callable(default) else default
                continue
            value = item[key]
            if typ is int and isinstance(value, bool) or not isinstance(value, typ):
                if typ is str and isinstance(value, (int, float)) and not isinstance(value, bool):
                    value = str(value)
                else:
                    problems.append(Problem(file, _line(item, key),
                                            f"{what}: {key} must be {typ.__name__}, got "
                                            f"{type(value).__name__}"))
                    bad = True
                    continue
            values[key] = value
        if not bad:
            obj = cls(**values)
            obj._where = (file, item)
            out.append(obj)
    return out


def listeners_of(config, problems: list | None = None) -> list[ListenerConf]:
    problems = [] if problems is None else problems
    items = config.raw.get("listeners") or []
    listeners = _parse(items, LISTENER_KEYS, ListenerConf, "listeners", problems,
                       "ticketgate.yaml")
    seen_names, seen_ports = set(), set()
    for lc in listeners:
        file, item = lc._where
        if lc.name in seen_names:
            problems.append(Problem(file, _line(item, "name"), f"listener {lc.name!r} defined "
                                                               f"twice"))
        seen_names.add(lc.name)
        if (lc.host, lc.port) in seen_ports:
            problems.append(Problem(file, _line(item, "port"), f"listener {lc.name!r}: "
                                                               f"{lc.host}:{lc.port} used twice"))
        seen_ports.add((lc.host, lc.port))
        if lc.protocol not in PROTOCOLS:
            problems.append(Problem(file, _line(item, "protocol"),
                                    f"listener {lc.name!r}: protocol must be smtp or lmtp"))
        if not 0 < lc.port < 65536:
            problems.append(Problem(file, _line(item, "port"), f"listener {lc.name!r}: bad port"))
        if bool(lc.tls_cert) != bool(lc.tls_key):
            problems.append(Problem(file, _line(item, "tls_cert" if lc.tls_cert else "tls_key"),
                                    f"listener {lc.name!r}: tls_cert and tls_key go together"))
        _check_files(config, lc, ("tls_cert", "tls_key", "auth_users_file"), file, item,
                     f"listener {lc.name!r}", problems)
        if (lc.require_tls or lc.auth_users_file) and not lc.tls_cert:
            problems.append(Problem(file, _line(item, "require_tls" if lc.require_tls else
                                                "auth_users_file"),
                                    f"listener {lc.name!r}: needs tls_cert/tls_key (AUTH only "
                                    f"after STARTTLS)"))
        if lc.auth_required and not lc.auth_users_file:
            problems.append(Problem(file, _line(item, "auth_required"),
                                    f"listener {lc.name!r}: auth_required needs auth_users_file"))
        lc.catch_all_domains = [str(d).lower().lstrip("@") for d in lc.catch_all_domains]
        _check_queue(config, lc, file, item, f"listener {lc.name!r}", problems)
        _check_positive(lc, ("max_message_size", "max_connections", "max_recipients",
                             "max_messages_per_connection", "timeout"), file, item,
                        f"listener {lc.name!r}", problems)
    return listeners


def accounts_of(config, problems: list | None = None) -> list[AccountConf]:
    problems = [] if problems is None else problems
    items = config.raw.get("mail_accounts") or []
    accounts = _parse(items, ACCOUNT_KEYS, AccountConf, "mail_accounts", problems,
                      "ticketgate.yaml")
    names = set()
    for ac in accounts:
        file, item = ac._where
        what = f"mail account {ac.name!r}"
        if ac.name in names:
            problems.append(Problem(file, _line(item, "name"), f"{what} defined twice"))
        names.add(ac.name)
        if ac.tls not in TLS_MODES:
            problems.append(Problem(file, _line(item, "tls"), f"{what}: tls must be imaps, "
                                                              f"starttls or none"))
        secrets = [k for k in ("password_file", "password_env", "oauth2_token_command",
                               "oauth2_token_file") if getattr(ac, k)]
        if len(secrets) != 1:
            problems.append(Problem(file, _line(item), f"{what}: give exactly one of "
                                                       f"password_file, password_env, "
                                                       f"oauth2_token_command, oauth2_token_file"))
        _check_files(config, ac, ("password_file", "oauth2_token_file", "tls_cafile"), file,
                     item, what, problems)
        if not (ac.after in ("seen", "delete") or
                (ac.after.startswith("move:") and ac.after[5:].strip())):
            problems.append(Problem(file, _line(item, "after"),
                                    f"{what}: after must be seen, delete or move:FOLDER"))
        if not ac.folders or not all(isinstance(f, str) and f for f in ac.folders):
            problems.append(Problem(file, _line(item, "folders"),
                                    f"{what}: folders must be a list of folder names"))
        if ac.port is not None and not 0 < ac.port < 65536:
            problems.append(Problem(file, _line(item, "port"), f"{what}: bad port"))
        _check_positive(ac, ("poll_interval", "batch_size", "timeout"), file, item, what,
                        problems)
        _check_queue(config, ac, file, item, what, problems)
    return accounts


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


def _check_positive(obj, keys, file, item, what, problems):
    for key in keys:
        if getattr(obj, key) <= 0:
            problems.append(Problem(file, _line(item, key), f"{what}: {key} must be positive"))


def _check_queue(config, obj, file, item, what, problems):
    if obj.queue and config.queues and obj.queue not in config.queues:
        problems.append(Problem(file, _line(item, "queue"), f"{what}: unknown queue "
                                                            f"{obj.queue!r}"))


def _resolve(config, path: str) -> Path:
    return (Path(config.dir) / os.path.expanduser(path)).resolve()


def validate(config, problems: list) -> None:
    listeners_of(config, problems)
    accounts_of(config, problems)


SECTION = ConfigSection("daemon", validate)
