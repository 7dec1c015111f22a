"""Shared fixtures: a ticketgate app on a throwaway copy of conf/ with SQLite, and real servers
on 127.0.0.1 (Dovecot IMAP, PostgreSQL, an aiosmtpd sink). A missing server binary skips
locally with the reason and fails under CI (CI=true), where .ci/run installs it.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
IS_ROOT = os.geteuid() == 0
IN_CI = os.environ.get("CI") == "true"


def skip_or_fail(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI must install it: see .ci/run)")
    pytest.skip(reason)


def line_of(path: str, needle: str) -> int:
    """The first line number of ``path`` that contains ``needle`` (config errors name it)."""
    for number, line in enumerate(open(path).read().splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(needle)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, timeout=10.0, greeting=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited early rc={proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if greeting is None or s.recv(200).startswith(greeting):
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"port {port} not ready")


def wait_for(predicate, timeout=15.0, step=0.05):
    """Poll ``predicate`` until it returns something true (which is returned), or fail."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


def configure_daemon(conf_dir, listeners=(), accounts=()):
    """Replace the listeners (and add mail accounts) in a conf copy's ticketgate.yaml."""
    path = conf_dir / "ticketgate.yaml"
    text = re.sub(r"\nlisteners:\n(?:  - .*\n)*", "\n", path.read_text())
    text += "\nlisteners:\n" + "".join(f"  - {l}\n" for l in listeners) if listeners else \
        "\nlisteners: []\n"
    if accounts:
        text += "mail_accounts:\n" + "".join(f"  - {a}\n" for a in accounts)
    path.write_text(text)


def server_dir(prefix) -> Path:
    """Not pytest's tmp_path: /tmp/pytest-of-root is 0700 and servers drop privileges."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def stop(proc, sig_timeout=10):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(sig_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- ticketgate on a copy of conf/ -----------------------------------------------------------
@pytest.fixture
def conf_dir(tmp_path) -> Path:
    """A private copy of the example conf/ that a test may edit."""
    target = tmp_path / "conf"
    shutil.copytree(CONF, target)
    return target


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'ticketgate.db'}"


@pytest.fixture
def make_app(conf_dir, db_url):
    from gateway.app import open_app

    apps = []

    def make(conf=None, database=None):
        app = open_app(conf or conf_dir, database=database or db_url)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.store.close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def ingest(app):
    """ingest(raw_bytes, **envelope) -> processing Outcome, through accept + process."""
    from gateway.intake import Envelope, accept
    from gateway.processing import process_inbound

    def run(raw: bytes | str, **envelope):
        if isinstance(raw, str):
            raw = raw.encode()
        accepted = accept(app.store, raw, Envelope(**envelope))
        return process_inbound(app.store, app.pipeline, accepted.inbound_id)

    return run


# ---- Dovecot ---------------------------------------------------------------------------------
DOVECOT_CONF = """\
base_dir = {T}/run
state_dir = {T}/state
log_path = {T}/dovecot.log
instance_name = dovecot-test-{port}
{users}
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{T}/cert.pem
ssl_key = <{T}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {T}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {T}/passwd
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Archive {{
    auto = create
  }}
}}
service imap-login {{
  {login_chroot}
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {sport}
    ssl = yes
  }}
}}
"""


class Dovecot:
    def __init__(self):
        self.T = server_dir("dovecot-")
        self.proc = None
        for d in ("run", "state", "mail"):
            (self.T / d).mkdir()
        if IS_ROOT:
            os.chmod(self.T, 0o711)
            shutil.chown(self.T / "mail", "nobody", "nogroup")
            users, login_chroot = "mail_uid = nobody\nmail_gid = nogroup", ""
        else:
            import grp
            import pwd

            me, mygrp = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
            users = (f"default_internal_user = {me}\ndefault_internal_group = {mygrp}\n"
                     f"default_login_user = {me}\nmail_uid = {me}\nmail_gid = {mygrp}\n"
                     "first_valid_uid = 1\nfirst_valid_gid = 1\nservice anvil {\n  chroot =\n}")
            login_chroot = "chroot ="
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", self.T / "key.pem", "-out", self.T / "cert.pem"],
                       check=True, capture_output=True)
        (self.T / "passwd").write_text(f"tester:{{PLAIN}}secret::::{self.T}/mail/tester::\n")
        os.chmod(self.T / "passwd", 0o644)
        self.users, self.login_chroot = users, login_chroot
        self.host, self.user, self.password = "127.0.0.1", "tester", "secret"
        self.cafile = str(self.T / "cert.pem")
        self.start()

    def start(self):
        """(Re)start on fresh ports (an old instance holds its ports for about a second)."""
        self.port, self.ssl_port = free_port(), free_port()
        (self.T / "dovecot.conf").write_text(DOVECOT_CONF.format(
            T=self.T, port=self.port, sport=self.ssl_port, users=self.users,
            login_chroot=self.login_chroot))
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", self.T / "dovecot.conf"])
        wait_port(self.port, self.proc, greeting=b"* OK")

    def stop(self):
        if self.proc is not None:
            stop(self.proc)

    def client(self):
        from imapclient import IMAPClient

        c = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        c.login(self.user, self.password)
        return c


@pytest.fixture(scope="session")
def dovecot():
    if not shutil.which("dovecot"):
        skip_or_fail("dovecot not installed (apt-get install -y dovecot-imapd)")
    server = Dovecot()
    yield server
    server.stop()
    shutil.rmtree(server.T, ignore_errors=True)


# ---- PostgreSQL ------------------------------------------------------------------------------
PGBIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="session")
def postgres_server():
    if not (PGBIN / "initdb").exists():
        skip_or_fail("PostgreSQL not installed (apt-get install -y postgresql)")
    T = server_dir("pg-")
    run_as = dict(user="postgres", group="postgres", extra_groups=[]) if IS_ROOT else {}
    if IS_ROOT:
        shutil.chown(T, "postgres", "postgres")
    port = free_port()
    subprocess.run([PGBIN / "initdb", "-D", T / "data", "-U", "postgres", "-A", "trust", "-E",
                    "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions"],
                   check=True, capture_output=True, **run_as)
    proc = subprocess.Popen([PGBIN / "postgres", "-D", T / "data", "-k", T, "-p", str(port),
                             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                             "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
                            stdout=subprocess.DEVNULL, stderr=open(T / "pg.log", "w"), **run_as)
    wait_port(port, proc)
    import psycopg

    for _ in range(200):
        try:
            psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres").close()
            break
        except psycopg.OperationalError:
            time.sleep(0.05)
    else:
        raise TimeoutError("postgres not accepting connections")
    yield {"port": port, "dir": T}
    proc.send_signal(2)
    proc.wait(30)
    shutil.rmtree(T, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh database per test on the session's PostgreSQL server."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    port = postgres_server["port"]
    with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres",
                         autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/{name}"


# ---- SMTP sink -------------------------------------------------------------------------------
class SinkHandler:
    def __init__(self):
        self.envelopes = []
        self.reply = "250 OK"    # tests may set e.g. "451 4.3.0 try later" or "550 5.1.1 no"

    async def handle_DATA(self, server, session, envelope):
        if self.reply.startswith("250"):
            self.envelopes.append(envelope)
        return self.reply


@pytest.fixture
def smtp_sink():
    from aiosmtpd.controller import Controller

    handler = SinkHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, handler
    controller.stop()
