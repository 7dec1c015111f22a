"""Hostile YAML in conf/ (an alias bomb, 10,000 nesting levels, a huge file) is a Problem with
file:line, quickly: never an out-of-memory, a RecursionError traceback or a hung reload
(issue 11 point 9)."""
from __future__ import annotations

import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.config.yamlload import MAX_DEPTH, MAX_FILE_BYTES, ConfigError, load_yaml
from tests.conftest import configure_daemon, free_port, wait_for
from tests.mails import make_mail

BIN = str(Path(sys.executable).parent / "ticketgate")


def billion_laughs() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        prev, name = chr(96 + i), chr(97 + i)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


HOSTILE = {
    "laughs": (billion_laughs(), 6, "aliases are expanded"),
    "deep-flow": ("x: " + "[" * 10_000 + "]" * 10_000 + "\n", 1, "nest"),
    "deep-flow-map": ("x: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n", 1, "nest"),
    "deep-block": ("".join("  " * i + f"k{i}:\n" for i in range(300)) + "  " * 300 + "v\n",
                   MAX_DEPTH + 1, f"nested deeper than {MAX_DEPTH} levels"),
    "many-aliases": ("a: &a 1\nb: [" + ", ".join(["*a"] * 5000) + "]\n", 2, "aliases"),
    "huge": ("x: [" + ", ".join(["1"] * (MAX_FILE_BYTES // 3)) + "]\n", 0, "file too large"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_yaml_is_a_problem_with_file_and_line(tmp_path, case):
    text, line, words = HOSTILE[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        load_yaml(path)
    assert time.perf_counter() - start < 5
    problem = err.value.problems[0]
    assert (problem.file, problem.line) == (str(path), line)
    assert words in problem.message


def test_ordinary_aliases_and_merge_keys_still_load(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("base: &base {queue: Raw, priority: 3 normal}\n"
                    "rules:\n  - <<: *base\n    name: one\n  - <<: *base\n    name: two\n"
                    "list: &l [1, 2, 3]\nagain: *l\n")
    data = load_yaml(path)
    assert [r["queue"] for r in data["rules"]] == ["Raw", "Raw"]
    assert data["again"] == [1, 2, 3] and data["rules"][1].line_of("name") == 6


def test_check_config_refuses_an_alias_bomb_without_traceback(conf_dir):
    (conf_dir / "filters.d" / "90-bomb.yaml").write_text(billion_laughs())
    start = time.perf_counter()
    r = subprocess.run([BIN, "check-config", str(conf_dir)], capture_output=True, timeout=60)
    assert time.perf_counter() - start < 30
    err = r.stderr.decode()
    assert r.returncode == 78, err
    assert "90-bomb.yaml:6: YAML too large" in err and "Traceback" not in err


def test_check_config_refuses_deep_nesting_without_traceback(conf_dir):
    (conf_dir / "queues.yaml").write_text("queues: " + "[" * 10_000 + "]" * 10_000 + "\n")
    r = subprocess.run([BIN, "check-config", str(conf_dir)], capture_output=True, timeout=60)
    err = r.stderr.decode()
    assert r.returncode == 78, err
    assert "queues.yaml:1:" in err and "RecursionError" not in err and "Traceback" not in err


def test_sighup_with_an_alias_bomb_keeps_the_daemon_serving(conf_dir, tmp_path):
    from tests.test_daemon import start

    port = free_port()
    configure_daemon(conf_dir, [f"{{name: mx, port: {port}}}"])
    proc = start(conf_dir, tmp_path)
    log = tmp_path / "daemon.log"
    try:
        wait_for(lambda: b"listening" in log.read_bytes() or _smtp_up(port), timeout=30)
        (conf_dir / "filters.d" / "90-bomb.yaml").write_text(billion_laughs())
        (conf_dir / "acl.d" / "90-deep.yaml").write_text("x: " + "{a: " * 10_000 + "}" * 10_000)
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: b"reload refused" in log.read_bytes(), timeout=30)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            assert s.sendmail("alice@customer.test", ["support@example.com"],
                              make_mail(msgid="after-bomb@customer.test")) == {}
        assert proc.poll() is None
        text = log.read_text()
        assert "90-bomb.yaml:6: YAML too large" in text
        assert "Traceback" not in text and "RecursionError" not in text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _smtp_up(port) -> bool:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=2):
            return True
    except OSError:
        return False
