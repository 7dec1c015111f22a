"""Loading conf/filters.d: every mistake is a config problem with file and line, never a crash;
hostile regexes are refused at load; a bad config never replaces a good one."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from filters.safe_regex import catastrophic_shape
from gateway.app import load_config
from gateway.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write(conf_dir, text, name="50-test.yaml"):
    (conf_dir / "filters.d" / name).write_text(textwrap.dedent(text).lstrip("\n"))
    return str(conf_dir / "filters.d" / name)


def problems(conf_dir) -> list:
    with pytest.raises(ConfigError) as exc:
        load_config(conf_dir)
    return exc.value.problems


def only(conf_dir, needle):
    found = [p for p in problems(conf_dir) if needle in p.message]
    assert found, f"no problem mentioning {needle!r}: {problems(conf_dir)}"
    return found[0]


def test_shipped_conf_is_valid():
    config = load_config(ROOT / "conf")
    assert len(config.filters) >= 2
    assert len({r.name for r in config.filters}) == len(config.filters)


def test_check_config_cli_validates_filters(conf_dir):
    ok = subprocess.run([sys.executable, "-m", "gateway.cli", "check-config", str(conf_dir)],
                        capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0 and "filter rules" in ok.stdout
    path = write(conf_dir, """
    - name: bad-queue
      match: {subject: x}
      set: {queue: Nowhere}
    """)
    bad = subprocess.run([sys.executable, "-m", "gateway.cli", "check-config", str(conf_dir)],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 78
    assert f"{path}:3: rule 'bad-queue': set.queue: unknown queue 'Nowhere'" in bad.stderr


@pytest.mark.parametrize("key,value,kind", [("queue", "Nowhere", "queue"),
                                            ("state", "exploded", "state"),
                                            ("priority", "9 insane", "priority"),
                                            ("owner", "ghost", "agent"),
                                            ("responsible", "ghost", "agent")])
def test_unknown_values_are_errors_with_file_and_line(conf_dir, key, value, kind):
    path = write(conf_dir, f"""
    - name: r1
      match:
        subject: x
      set:
        title: fine
        {key}: {value}
    """)
    p = only(conf_dir, f"unknown {kind} {value!r}")
    assert (p.file, p.line) == (path, 6)
    assert "known:" in p.message


def test_unknown_follow_up_value_too(conf_dir):
    path = write(conf_dir, """
    - name: r1
      match: {subject: x}
      set_on_follow_up:
        queue: Nowhere
    """)
    p = only(conf_dir, "set_on_follow_up.queue: unknown queue 'Nowhere'")
    assert (p.file, p.line) == (path, 4)


def test_bad_regex_names_file_line_and_rule(conf_dir):
    path = write(conf_dir, """
    - name: ok
      match: {subject: fine}
      set: {title: t}
    - name: broken
      match:
        from: x
        subject: '(unclosed'
      set: {title: t}
    """)
    p = only(conf_dir, "invalid regex")
    assert (p.file, p.line) == (path, 7)
    assert "rule 'broken'" in p.message and "'subject'" in p.message


@pytest.mark.parametrize("pattern", [r"(a+)+", r"(.*)*", r"(\w+\s?)*$", r"(a|aa)+$",
                                     r"^(\s*\w+)*$", r"(x+x+)+y", r"(\w{1,3})+$",
                                     r"((ab)*)+"])
def test_catastrophic_regex_refused_at_load(conf_dir, pattern):
    path = write(conf_dir, f"""
    - name: hostile
      match:
        body: '{pattern}'
      set: {{title: t}}
    """)
    p = only(conf_dir, "rejected")
    assert (p.file, p.line) == (path, 3)
    assert "rule 'hostile'" in p.message and "exponential" in p.message


@pytest.mark.parametrize("pattern", [r"(?:[a-z]+\.)+[a-z]+", r"(\d{1,3}\.){3}\d{1,3}",
                                     r"((Re|Fwd?|AW):\s*)+", r"(\d+\.)+\d+", r"(?>a+)+",
                                     r"\b(printer|toner|paper jam)\b", r"^\[(?P<b>[A-Z]+)\]",
                                     r"(a|ab)+c", r".*error.*"])
def test_safe_nested_shapes_are_accepted(pattern):
    assert catastrophic_shape(pattern) is None


def test_catastrophic_check_survives_process_on_real_search():
    """Guard against the checker itself being slow or crashing on odd input."""
    for pattern in [r"(" * 50 + "a" + ")" * 50, r"\p{L}+", "[", "(?P<x>a)(?P=x)+"]:
        catastrophic_shape(pattern)


def test_duplicate_names_across_files(conf_dir):
    first = write(conf_dir, """
    - name: same
      match: {subject: a}
      set: {title: a}
    """, name="20-a.yaml")
    second = write(conf_dir, """
    - name: other
      match: {subject: a}
      set: {title: a}
    - name: same
      match: {subject: b}
      set: {title: b}
    """, name="30-b.yaml")
    p = only(conf_dir, "duplicate name")
    assert (p.file, p.line) == (second, 4)
    assert f"{first}:1" in p.message


@pytest.mark.parametrize("text,needle,line", [
    ("- just a string\n", "a rule must be a mapping", 1),
    ("name: not-a-list\nmatch: {}\n", "must be a YAML list", 1),
    ("- name: r\n  match: {subject: x}\n  set: {queue: QA}\n  colour: red\n",
     "unknown key 'colour' (known keys: name, description, match, set", 4),
    ("- name: r\n  match: {subject: x}\n  set: {queue: QA, colour: red}\n",
     "unknown key 'colour' in set (known keys: queue, priority", 3),
    ("- name: r\n  match: {subject: x}\n  set_on_follow_up: {ignore: yes}\n",
     "'ignore' cannot be set on a follow-up", 3),
    ("- name: r\n  match: [subject, x]\n  set: {queue: QA}\n", "'match' must be a mapping", 2),
    ("- name: r\n  match: {subject: x}\n  set: [queue, QA]\n", "'set' must be a mapping", 3),
    ("- name: r\n  match: {subject: {a: 1}}\n  set: {queue: QA}\n",
     "condition 'subject' must be a regex string", 2),
    ("- name: r\n  match: {X-Flag: yes}\n  set: {queue: QA}\n", "(quote yes/no/on/off)", 2),
    ("- name: r\n  match: {subject: x}\n  set: {lock: maybe}\n", "set.lock must be yes/no", 3),
    ("- name: r\n  match: {subject: x}\n  set: {queue: QA}\n  stop: 3\n",
     "'stop' must be yes/no", 4),
    ("- name: r\n  match: {subject: x}\n  set: {dynamic_fields: [a]}\n",
     "dynamic_fields must map", 3),
    ("- name: r\n  match: {subject: x}\n  set: {title: [a]}\n", "set.title must be text", 3),
    ("- match: {subject: x}\n  set: {queue: QA}\n", "rule without a name", 1),
    ("- name: r\n  set: {queue: QA}\n", "no 'match'", 1),
    ("- name: r\n  match: {subject: x}\n", "neither 'set' nor 'set_on_follow_up'", 1),
    ("- name: r\n  match: {'bad header': x}\n  set: {queue: QA}\n", "is not a header name", 2),
    ("- name: r\n  match: {subject: x, not: [a]}\n  set: {queue: QA}\n",
     "'not' must be a mapping", 2),
    ("- name: r\n  match: {subject: x}\n  set: {follow_up: yes}\n", "follow_up: yes does", 3),
    ("- name: r\n  match: {subject: x}\n  set: {queue: QA}\n- {name: [x]}\n",
     "rule without a name", 4),
    ("- name: r\n  match: {subject: x\n", "YAML syntax error", 0),
])
def test_bad_content_is_a_problem_not_an_exception(conf_dir, text, needle, line):
    path = write(conf_dir, text)
    p = only(conf_dir, needle)
    assert p.file == path
    if line:
        assert p.line == line


@pytest.mark.parametrize("ref,needle", [
    ("${subject.2}", "has 1 group(s)"),
    ("${subject.nope}", "has no group named 'nope' (named groups: b)"),
    ("${body.1}", "refers to no match condition 'body' (conditions: subject, from)"),
    ("${x-spam.0}", "refers to negated match condition"),
    ("${subject}", "bad reference '${subject}'"),
    ("${}", "bad reference"),
])
def test_unknown_capture_references_are_load_errors(conf_dir, ref, needle):
    path = write(conf_dir, f"""
    - name: caps
      match:
        subject: '(?P<b>\\w+)'
        from: '.'
        not: {{X-Spam: 'yes'}}
      set:
        title: "x {ref} y"
    """)
    p = only(conf_dir, needle)
    assert (p.file, p.line) == (path, 7)


def test_priority_number_shortcut_and_queue_values(conf_dir):
    write(conf_dir, """
    - name: r
      match: {subject: x}
      set: {priority: 5, queue: "Hardware::Printer"}
    """)
    config = load_config(conf_dir)
    rule = config.filters[-1]
    assert rule.sets["priority"].source == "5 very high"


def test_empty_file_and_no_directory(conf_dir):
    shipped = len(load_config(conf_dir).filters)
    write(conf_dir, "")
    assert len(load_config(conf_dir).filters) == shipped
    import shutil

    shutil.rmtree(conf_dir / "filters.d")
    config = load_config(conf_dir)
    assert config.filters == [] and config.filter_engine.run is not None


def test_limits_file(conf_dir):
    (conf_dir / "filters.yaml").write_text("limits:\n  max_body_chars: 100\n"
                                           "  match_timeout: 0.2\n")
    config = load_config(conf_dir)
    assert config.filter_engine.limits.max_body_chars == 100
    assert config.filter_engine.limits.match_timeout == 0.2
    assert conf_dir / "filters.yaml" in config.files
    (conf_dir / "filters.yaml").write_text("limits:\n  max_body_chars: -1\n  speed: 3\n")
    msgs = [p.message for p in problems(conf_dir)]
    assert any("must be a positive number" in m for m in msgs)
    assert any("unknown limit 'speed'" in m for m in msgs)


def test_filter_files_are_watched_for_reload(conf_dir):
    config = load_config(conf_dir)
    assert conf_dir.resolve() / "filters.d" / "10-example.yaml" in config.files


def test_bad_filters_do_not_replace_a_good_config(conf_dir, make_app):
    app = make_app()
    before = app.config
    write(conf_dir, "- name: x\n  match: {subject: '(a+)+'}\n  set: {queue: QA}\n")
    with pytest.raises(ConfigError):
        app.reload()
    assert app.config is before and before.filter_engine is not None


def test_all_problems_reported_at_once(conf_dir):
    write(conf_dir, """
    - name: a
      match: {subject: '('}
      set: {queue: Nope}
    - name: b
      match: {subject: '(.*)*'}
      set: {state: nope}
    """)
    msgs = [p.message for p in problems(conf_dir)]
    assert len([m for m in msgs if "rule 'a'" in m or "rule 'b'" in m]) == 4
