"""One schema mechanism (gateway/config/schema.py) for every section: required keys,
choices, per-key checks, nested tables and lists of entries, each problem with file:line;
sections store typed results in declared Config fields."""
from __future__ import annotations

import re

import pytest

from gateway.app import load_config
from gateway.config import ConfigError
from gateway.config.schema import REQUIRED, Key, fields_from, positive, section
from gateway.config.yamlload import load_yaml
from gateway.ingest.config import ACCOUNT_KEYS, AccountConf, ListenerConf
from tests.conftest import line_of


def add(conf_dir, text: str) -> str:
    path = conf_dir / "ticketgate.yaml"
    body = re.sub(r"\nlisteners:\n(?:  - .*\n)*", "\n", path.read_text())
    path.write_text(body + text)
    return str(path)


def problems(conf_dir) -> list:
    with pytest.raises(ConfigError) as exc:
        load_config(conf_dir)
    return exc.value.problems


def find(found, needle):
    hits = [p for p in found if needle in p.message]
    assert hits, found
    return hits[0]


TABLE = {
    "name": Key(str, REQUIRED, "a name"),
    "size": Key(int, 10, "a size", check=positive),
    "kinds": Key(list, list, "kinds", choices=("a", "b")),
    "inner": Key(dict, dict, "nested", keys={"depth": Key(int, 1, "how deep")}),
    "items": Key(list, list, "entries", each={"name": Key(str, REQUIRED, "its name"),
                                              "colour": Key(str, "red", "its colour")},
                 item="item"),
}


def check(tmp_path, text):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    found = []
    return section(load_yaml(path), TABLE, found, "t.yaml"), found, str(path)


def test_a_table_checks_nested_keys_and_entries_with_file_and_line(tmp_path):
    values, found, path = check(tmp_path, "name: x\nsize: 0\nkinds: [a, z, b]\n"
                                          "inner: {depth: deep}\n"
                                          "items:\n  - {name: one}\n  - {colour: blue}\n")
    messages = [(p.file, p.line, p.message) for p in found]
    assert (path, 2, "t.yaml: size must be positive, got 0") in messages
    assert (path, 3, "t.yaml: 'kinds' must be one of a, b, got 'z'") in messages
    assert (path, 4, "inner: 'depth' must be a whole number, got 'deep'") in messages
    assert (path, 7, "items[1]: 'name' is required") in messages
    # what failed is replaced by its default; good list items stay
    assert values == {"name": "x", "size": 10, "kinds": ["a", "b"], "inner": {"depth": 1},
                      "items": [{"name": "one", "colour": "red"},
                                {"name": None, "colour": "blue"}]}
    assert values["items"][0].line_of("name") == 6     # results still know their lines


def test_absent_and_empty_values_are_the_defaults(tmp_path):
    values, found, _ = check(tmp_path, "name: x\nsize:\ninner:\n")
    assert found == []
    assert values == {"name": "x", "size": 10, "kinds": [], "inner": {"depth": 1}, "items": []}


def test_required_keys_are_required(tmp_path):
    _, found, path = check(tmp_path, "size: 3\n")
    assert [(p.line, p.message) for p in found] == [(1, "t.yaml: 'name' is required")]


def test_settings_classes_take_their_fields_from_the_table():
    account = AccountConf("box", "imap.example.com", "helpdesk")
    for name, key in ACCOUNT_KEYS.items():
        if not key.required:
            assert getattr(account, name) == key.fresh_default(), name

    @fields_from({"a": Key(int, REQUIRED, ""), "b": Key(list, lambda: ["x"], "")})
    class Pair:
        pass

    assert Pair(1) == Pair(a=1, b=["x"]) and Pair(1).b is not Pair(1).b


def test_ticketgate_yaml_sections_are_checked_with_file_and_line(conf_dir):
    path = add(conf_dir, "outbound:\n  timeout: 0\n  tls: ssl\n"
                         "agent_auth:\n  token_length: 4\n"
                         "listeners:\n  - {name: mx, port: 2525, max_recipients: many}\n"
                         "states:\n  - {name: Nameless type}\n")
    found = problems(conf_dir)
    p = find(found, "outbound: timeout must be positive, got 0")
    assert (p.file, p.line) == (path, line_of(path, "timeout: 0"))
    p = find(found, "outbound: 'tls' must be one of none, starttls, tls, got 'ssl'")
    assert p.line == line_of(path, "tls: ssl")
    p = find(found, "agent_auth: token_length must be 8..64 hex digits")
    assert p.line == line_of(path, "token_length: 4")
    p = find(found, "listener 'mx': 'max_recipients' must be a whole number")
    assert p.line == line_of(path, "max_recipients")
    p = find(found, "states[0]: 'type' is required")
    assert p.line == line_of(path, "Nameless type")


def test_queue_calendars_are_checked_by_the_calendars_section(conf_dir):
    path = conf_dir / "queues.yaml"
    path.write_text(path.read_text().replace("calendar: around-the-clock",
                                             "calendar: weekends-only"))
    p = find(problems(conf_dir), "queue 'Network Outage': unknown calendar 'weekends-only'")
    assert (p.file, p.line) == (str(path), line_of(str(path), "weekends-only"))
    # a broken calendars.yaml is one problem, not one more per queue
    (conf_dir / "calendars.yaml").write_text("default: [\n")
    assert not [p for p in problems(conf_dir) if "unknown calendar" in p.message]


def test_sections_store_typed_results_in_declared_fields(conf_dir):
    add(conf_dir, "listeners:\n  - {name: mx, port: 2525, catch_all_domains: ['@Example.COM']}\n"
                  "mail_accounts:\n  - {name: box, host: imap.example.com, user: u, "
                  "password_env: TG_PW}\n")
    config = load_config(conf_dir)
    [listener] = config.listeners
    assert isinstance(listener, ListenerConf) and listener.source == "smtp:mx"
    assert listener.catch_all_domains == ["example.com"] and listener.max_connections == 100
    [account] = config.mail_accounts
    assert isinstance(account, AccountConf) and account.real_port == 993
    assert set(config.calendars) == {"default", "around-the-clock"}
    assert config.ticket_number["min_counter_size"] == 5       # every key, no .get(k, default)
    assert config.queues["VIP"].escalation.first_response == 60
