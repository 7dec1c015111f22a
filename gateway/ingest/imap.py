"""IMAP poller (imapclient): drain the configured folders into accepted inbound rows.

Per account, one thread (imapclient is a blocking library; the event loop stays free):
connect (imaps / starttls / none; password or XOAUTH2), then for each folder fetch
``BODY.PEEK[]`` by UID in chunks of ``batch_size`` (never one round-trip per mail), commit the
chunk with one ``accept_many`` transaction, and only then flag/move/delete those UIDs. A crash
in between leaves the messages untouched; the next run fetches them again and the dedup key
makes no second article. A message that cannot be fetched is logged and left for the next
poll. Afterwards IDLE on the first folder when the server offers it, else wait
``poll_interval``. Any connection error: reconnect with exponential backoff (1 s .. 5 min).

Config keys (ticketgate.yaml ``mail_accounts``): see gateway/ingest/config.py ACCOUNT_KEYS.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import shlex
import ssl
import subprocess
import threading
import time
from typing import Callable

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from gateway.ingest.config import AccountConf
from gateway.failpoints import failpoint
from gateway.ingest.source import SourceContext
from gateway.intake import Accepted, Envelope, accept_many

log = logging.getLogger("ticketgate.imap")

IDLE_RENEW = 25 * 60          # RFC 2177: re-issue IDLE before the 29-minute server timeout
BACKOFF_MIN, BACKOFF_MAX = 1.0, 300.0


def secret_of(account: AccountConf) -> tuple[str, str]:
    """('password' | 'oauth2', secret). Read at connect time, never logged."""
    if account.password_file:
        with open(account.password_file, encoding="utf-8") as fh:
            return "password", fh.readline().rstrip("\r\n")
    if account.password_env:
        value = os.environ.get(account.password_env)
        if value is None:
            raise RuntimeError(f"environment variable {account.password_env} is not set")
        return "password", value
    if account.oauth2_token_file:
        with open(account.oauth2_token_file, encoding="utf-8") as fh:
            return "oauth2", fh.read().strip()
    if account.oauth2_token_command:
        out = subprocess.run(shlex.split(account.oauth2_token_command), capture_output=True,
                             text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"oauth2_token_command exited {out.returncode}")
        return "oauth2", out.stdout.strip()
    raise RuntimeError("no credentials configured")


def connect(account: AccountConf) -> IMAPClient:
    ctx = ssl.create_default_context(cafile=account.tls_cafile) if account.tls != "none" else None
    client = IMAPClient(account.host, port=account.real_port, ssl=account.tls == "imaps",
                        ssl_context=ctx, timeout=account.timeout)
    try:
        if account.tls == "starttls":
            client.starttls(ctx)
        kind, secret = secret_of(account)
        if kind == "oauth2":
            client.oauth2_login(account.user, secret)
        else:
            client.login(account.user, secret)
    except BaseException:
        try:
            client.shutdown()
        except Exception:  # noqa: BLE001
            pass
        raise
    return client


class Poller:
    """One mail account. ``start()`` runs it in a thread; ``stop()`` ends it after the chunk
    in hand is committed and acknowledged."""

    def __init__(self, account: AccountConf, store_of: Callable, *,
                 on_commit: Callable[[list[Accepted]], None] | None = None):
        self.account = account
        self.store_of = store_of
        self.on_commit = on_commit
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.client: IMAPClient | None = None
        self.idle_supported: bool | None = None
        self.connected = False
        self.last_poll: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.accepted = 0
        self.duplicates = 0
        self.fetch_errors = 0
        self.reconnects = 0

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"imap:{self.account.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Poll now (the scheduler calls this for accounts without IDLE)."""
        self._wake.set()

    def run(self) -> None:
        backoff = BACKOFF_MIN
        while not self._stop.is_set():
            try:
                self.client = connect(self.account)
                self.connected = True
                log.info("imap %s: connected to %s:%s", self.account.name, self.account.host,
                         self.account.real_port)
                backoff = BACKOFF_MIN
                self._session()
            except Exception as exc:  # noqa: BLE001 - the stage boundary: log, back off, retry
                if self._stop.is_set():
                    break
                self.last_error, self.last_error_at = f"{type(exc).__name__}: {exc}"[:300], \
                    time.time()
                self.reconnects += 1
                delay = backoff * random.uniform(0.8, 1.2)
                log.warning("imap %s: %s; reconnecting in %.1f s", self.account.name,
                            self.last_error, delay)
                backoff = min(backoff * 2, BACKOFF_MAX)
                self._stop.wait(delay)
            finally:
                self.connected = False
                self._close()

    def _close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                client.logout()
            except Exception:  # noqa: BLE001
                try:
                    client.shutdown()
                except Exception:  # noqa: BLE001
                    pass

    # ---- one connection ---------------------------------------------------------------
    def _session(self) -> None:
        client = self.client
        caps = client.capabilities()
        self.idle_supported = self.account.idle and b"IDLE" in caps
        while not self._stop.is_set():
            for folder in self.account.folders:
                if self._stop.is_set():
                    return
                self.drain(folder)
            self.last_poll = time.time()
            self.last_error = None
            if self._stop.is_set():
                return
            if self.idle_supported:
                self._idle(self.account.folders[0])
            else:
                self._wake.wait(self.account.poll_interval)
                self._wake.clear()

    def _idle(self, folder: str) -> None:
        client = self.client
        client.select_folder(folder, readonly=False)
        client.idle()
        started = time.monotonic()
        eof_suspects = 0
        try:
            while not self._stop.is_set() and not self._wake.is_set():
                t0 = time.monotonic()
                responses = client.idle_check(timeout=1)
                # imapclient swallows EOF in idle_check: "readable, but nothing" again and
                # again means the server closed the connection
                eof_suspects = eof_suspects + 1 if not responses and \
                    time.monotonic() - t0 < 0.5 else 0
                if eof_suspects >= 3:
                    raise ConnectionError("connection closed by the server during IDLE")
                if any(r[1] in (b"EXISTS", b"RECENT") for r in responses
                       if isinstance(r, tuple) and len(r) > 1):
                    break
                if any(r and r[0] == b"BYE" for r in responses if isinstance(r, tuple)):
                    raise ConnectionError("server said BYE")
                if time.monotonic() - started > self._idle_limit():
                    break
        finally:
            self._wake.clear()
            client.idle_done()

    def _idle_limit(self) -> float:
        """IDLE watches the first folder only: the others are polled every poll_interval;
        with one folder, IDLE is renewed well before the server's 29-minute timeout."""
        if len(self.account.folders) > 1:
            return self.account.poll_interval
        return min(IDLE_RENEW, self.account.poll_interval * 10)

    def drain(self, folder: str) -> int:
        """Fetch every message waiting in ``folder`` in UID chunks; returns mails stored."""
        client = self.client
        client.select_folder(folder, readonly=False)
        criteria = ["UNSEEN"] if self.account.after == "seen" else ["NOT", "DELETED"]
        uids = sorted(client.search(criteria))
        if not uids:
            return 0
        log.info("imap %s: %d message(s) waiting in %s", self.account.name, len(uids), folder)
        stored = 0
        size = self.account.batch_size
        for start in range(0, len(uids), size):
            if self._stop.is_set():
                break
            chunk = uids[start:start + size]
            messages = self._fetch(chunk)
            if not messages:
                continue
            envelope = Envelope(source=self.account.source, rcpt_to=[], trusted=self.account.trusted,
                                queue=self.account.queue)
            items = [(raw, envelope) for _, raw in messages]
            results = accept_many(self.store_of(), items)   # raises: nothing acknowledged
            for (uid, _), result in zip(messages, results):
                log.info("imap %s: accepted inbound=%s%s uid=%s folder=%s", self.account.name,
                         result.inbound_id, " (duplicate)" if result.duplicate else "", uid,
                         folder)
            self.accepted += len(results)
            self.duplicates += sum(r.duplicate for r in results)
            if self.on_commit is not None:
                self.on_commit(results)
            failpoint("IMAP_AFTER_ACCEPT")   # crash tests: committed, not flagged/moved yet
            self._acknowledge([uid for uid, _ in messages])
            stored += len(messages)
        return stored

    def _fetch(self, uids: list[int]) -> list[tuple[int, bytes]]:
        try:
            data = self.client.fetch(uids, ["BODY.PEEK[]"])
        except IMAPClientError as exc:
            if len(uids) == 1:
                self._fetch_failed(uids[0], exc)
                return []
            # one bad message must not block the chunk: fetch one by one
            out = []
            for uid in uids:
                out.extend(self._fetch([uid]))
            return out
        out = []
        for uid in uids:
            raw = data.get(uid, {}).get(b"BODY[]")
            if not raw:
                self._fetch_failed(uid, "no body returned")
                continue
            out.append((uid, raw))
        return out

    def _fetch_failed(self, uid, why) -> None:
        self.fetch_errors += 1
        log.error("imap %s: cannot fetch uid %s (left for the next poll): %s",
                  self.account.name, uid, why)

    def _acknowledge(self, uids: list[int]) -> None:
        client, after = self.client, self.account.after
        if after == "seen":
            client.add_flags(uids, [b"\\Seen"], silent=True)
        elif after == "delete":
            client.add_flags(uids, [b"\\Deleted"], silent=True)
            self._expunge(uids)
        else:
            target = after[5:].strip()
            client.add_flags(uids, [b"\\Seen"], silent=True)
            if b"MOVE" in client.capabilities():
                client.move(uids, target)
            else:
                client.copy(uids, target)
                client.add_flags(uids, [b"\\Deleted"], silent=True)
                self._expunge(uids)

    def _expunge(self, uids: list[int]) -> None:
        if self.client.has_capability("UIDPLUS"):
            self.client.uid_expunge(uids)
        else:
            self.client.expunge()

    def status(self) -> dict:
        return {"name": self.account.name, "host": self.account.host,
                "port": self.account.real_port, "user": self.account.user,
                "folders": list(self.account.folders), "connected": self.connected,
                "idle": self.idle_supported, "last_poll": self.last_poll,
                "last_error": self.last_error, "last_error_at": self.last_error_at,
                "accepted": self.accepted, "duplicates": self.duplicates,
                "fetch_errors": self.fetch_errors, "reconnects": self.reconnects}


class MailAccount:
    """An IngestSource (gateway/ingest/source.py) for one account: its Poller in a thread."""

    def __init__(self, poller: Poller):
        self.poller = poller
        self.name = f"imap:{poller.account.name}"

    @property
    def poll_every(self) -> float:
        return float(self.poller.account.poll_interval)

    async def start(self) -> None:
        self.poller.start()

    async def stop(self, grace: float = 30.0) -> None:
        await asyncio.to_thread(self.poller.stop, grace)

    def wake(self) -> None:
        """Called every ``poll_every`` seconds: IDLE tells us of new mail; without it, poll."""
        if self.poller.idle_supported is False:
            self.poller.wake()

    def status(self) -> dict:
        return self.poller.status()


def build_accounts(config, context: SourceContext) -> list[MailAccount]:
    return [MailAccount(Poller(account, context.store_of, on_commit=context.on_commit))
            for account in config.mail_accounts]
