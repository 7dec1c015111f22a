"""The keys of the core files of conf/: ticketgate.yaml, queues.yaml and agents.yaml.

Each key has its type, default and a one-line doc (gateway/config/schema.py ``Key``); the
loader checks the files against these tables, ``check-config --defaults`` prints them.
"""
from __future__ import annotations

import re

from gateway.config.auto_responses import AUTO_RESPONSES
from gateway.config.schema import REQUIRED, Key, email, not_negative, positive

# ---- ticketgate.yaml -------------------------------------------------------------------------
TICKET_NUMBER = {
    "generator": Key(str, "date_checksum", "date_checksum (YYYYMMDD + system id + counter + "
                                           "check digit) or autoincrement",
                     choices=("date_checksum", "autoincrement")),
    "system_id": Key(str, "10", "1-4 digits that make our numbers ours",
                     check=lambda v: None if re.fullmatch(r"\d{1,4}", v) else "must be 1-4 "
                                                                                "digits"),
    "hook": Key(str, "Ticket#", "subject hook text before the number"),
    "divider": Key(str, "", "text between hook and number"),
    "min_counter_size": Key(int, 5, "autoincrement: zero-pad the counter to this many digits",
                            check=not_negative),
}

FOLLOW_UP = {
    "references": Key(str, "always", "In-Reply-To/References naming our Message-IDs: always | "
                                     "subject_match (only with the same subject) | off",
                      choices=("always", "subject_match", "off")),
    "search_body": Key(bool, False, "also look for a ticket number in the body text"),
    "search_attachments": Key(bool, False, "also look in text/plain and text/html attachments"),
}

ESCALATION = {
    "suspend_pending": Key(bool, True, "pending tickets do not escalate while pending"),
}

PROCESSING = {
    "max_attempts": Key(int, 5, "failed processing attempts before a mail is quarantined",
                        check=positive),
}

SYSTEM_ADDRESS = {
    "address": Key(str, REQUIRED, "the email address", check=email,
                   example="support@example.com"),
    "name": Key(str, "", "display name used as sender"),
    "queue": Key(str, None, "queue that mail to this address goes to (default: default_queue)"),
}

STATE_TYPES = ("new", "open", "pending reminder", "pending auto", "closed", "merged", "removed")
STATE = {
    "name": Key(str, REQUIRED, "the state's name", example="open"),
    "type": Key(str, REQUIRED, "what the state means", choices=STATE_TYPES, example="open"),
}

MAIN = {
    "database": Key(str, "sqlite:///{data_dir}/ticketgate.db",
                    "SQLAlchemy URL; {data_dir} is replaced; sqlite (WAL) or postgresql+psycopg"),
    "data_dir": Key(str, "../var", "where the SQLite database lives; relative to the conf dir"),
    "fqdn": Key(str, "localhost", "host name used in our own Message-IDs"),
    "default_queue": Key(str, "Unassigned", "queue for mail that nothing routes elsewhere"),
    "system_addresses": Key(list, list, "addresses we receive on", each=SYSTEM_ADDRESS),
    "ticket_number": Key(dict, dict, "ticket number generator and subject hook",
                         keys=TICKET_NUMBER),
    "follow_up": Key(dict, dict, "where follow-up references are searched", keys=FOLLOW_UP),
    "states": Key(list, None, "ticket states; OTRS defaults when absent", each=STATE),
    "priorities": Key(list, None, "priorities [\"1 very low\", ...]; OTRS defaults when absent"),
    "default_priority": Key(str, "3 normal", "priority of a new ticket"),
    "processing": Key(dict, dict, "inbound processing", keys=PROCESSING),
    "escalation": Key(dict, dict, "escalation behaviour", keys=ESCALATION),
    # Read by other parts of ticketgate: each is replaced by the Key its ConfigSection
    # declares (with the keys inside), and accepted as it is when no section declares it.
    "listeners": Key(list, list, "SMTP/LMTP listeners (daemon)"),
    "mail_accounts": Key(list, list, "IMAP mail accounts (daemon)"),
    "outbound": Key(dict, dict, "smarthost for outgoing mail (notifier)"),
    "prefilters": Key(dict, dict, "built-in pre-filters and their switches"),
    "agent_auth": Key(dict, dict, "how an agent's mail proves who sent it"),
}

# ---- queues.yaml -----------------------------------------------------------------------------
ESCALATION_TIMES = {
    "first_response": Key(int, 0, "working minutes until the first answer (0 = off)"),
    "first_response_notify": Key(int, 0, "warn at this percent of first_response (0 = no)"),
    "update": Key(int, 0, "working minutes between customer mail and our answer (0 = off)"),
    "update_notify": Key(int, 0, "warn at this percent of update (0 = no)"),
    "solution": Key(int, 0, "working minutes until the ticket is closed (0 = off)"),
    "solution_notify": Key(int, 0, "warn at this percent of solution (0 = no)"),
}
FOLLOW_UP_OPTIONS = ("possible", "reject", "new_ticket")
QUEUE = {
    "group": Key(str, None, "group whose members may work this queue"),
    "calendar": Key(str, "default", "calendar for escalation and unlock times"),
    "escalation": Key(dict, dict, "escalation times of this queue", keys=ESCALATION_TIMES),
    "follow_up": Key(str, "possible", "follow-up to a closed ticket: possible | reject | "
                                      "new_ticket",
                     check=lambda v: None if v in FOLLOW_UP_OPTIONS else
                     f"must be one of {', '.join(FOLLOW_UP_OPTIONS)}"),
    "follow_up_state": Key(str, "open", "state a reopened ticket gets"),
    "lock_after_follow_up": Key(bool, False, "lock a reopened ticket to its previous owner"),
    "unlock_timeout": Key(int, 0, "working minutes without agent activity before unlock",
                          check=not_negative),
    "system_address": Key(str, None, "address our mail to customers of this queue comes from"),
    "auto_responses": Key(dict, dict, "template file per auto-response type",
                          keys={kind.name: Key(str, None, f"template sent when {kind.doc}")
                                for kind in AUTO_RESPONSES},
                          noun="auto-response type"),
    "salutation": Key(str, "", "text put before every mail body of this queue"),
    "signature": Key(str, "", "text put after every mail body of this queue"),
    "comment": Key(str, "", "free text for admins"),
}
QUEUES_FILE = {
    "queues": Key(dict, dict, "queue name -> settings; a sub-queue is Parent::Child",
                  each=QUEUE, item="queue", example="Unassigned"),
}

# ---- agents.yaml -----------------------------------------------------------------------------
RIGHTS = ("ro", "move_into", "create", "note", "owner", "priority", "rw")
GROUP = {"comment": Key(str, "", "free text")}
ROLE = {"groups": Key(dict, dict, f"group -> list of rights ({', '.join(RIGHTS)})"),
        "comment": Key(str, "", "free text")}
AGENT = {
    "name": Key(str, "", "full name"),
    "email": Key((str, list), None, "one address or a list", example="agent@example.com"),
    "roles": Key(list, list, "roles the agent has"),
    "groups": Key(dict, dict, "direct group -> rights (if direct_group_rights)"),
    "valid": Key(bool, True, "a disabled agent is treated as a customer"),
    "notifications": Key(dict, dict, "event -> yes/no opt-out"),
}
AGENTS_FILE = {
    "groups": Key(dict, dict, "group name -> settings", each=GROUP, item="group",
                  example="Tier 1"),
    "roles": Key(dict, dict, "role name -> settings", each=ROLE, item="role", example="Tier 1"),
    "agents": Key(dict, dict, "login -> settings", each=AGENT, item="agent", example="jdoe"),
    "direct_group_rights": Key(bool, True, "allow agent -> group rights besides roles"),
    "superusers": Key(list, list, "agents that bypass ACLs (named explicitly)"),
}

DEFAULT_STATES = [
    ("new", "new"), ("open", "open"), ("pending reminder", "pending reminder"),
    ("pending auto close+", "pending auto"), ("pending auto close-", "pending auto"),
    ("closed successful", "closed"), ("closed unsuccessful", "closed"),
    ("merged", "merged"), ("removed", "removed"),
]
DEFAULT_PRIORITIES = ["1 very low", "2 low", "3 normal", "4 high", "5 very high"]

# The core's tables, per file, for check-config --defaults (sections add theirs).
CORE_KEYS = (("ticketgate.yaml", MAIN), ("queues.yaml", QUEUES_FILE),
             ("agents.yaml", AGENTS_FILE))
