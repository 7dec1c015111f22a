"""The daemon (``ticketgate run``): one asyncio loop for SMTP/LMTP I/O, a thread per IMAP
account, an inbound worker, APScheduler for time-driven jobs, signals and sd_notify.

- On start: process every pending mail (crash recovery), then listen and poll.
- Inbound worker: ``process_pending`` in a thread, woken after each commit and every
  ``WORKER_INTERVAL`` seconds; one worker, so processing never races itself.
- Jobs: ``app.parts.jobs`` (gateway.parts.Job, from the composition root); ``job.run(app)``
  runs in a thread every ``job.seconds``.
- SIGHUP: reload conf/ (on ConfigError every problem is logged and the old config stays).
- SIGTERM/SIGINT: stop listening, finish in-flight mails (commit + reply), exit 0.
- systemd: READY=1 after start, WATCHDOG=1 from the event loop, STATUS=..., STOPPING=1.
- A JSON status file in ``data_dir`` feeds ``ticketgate status``.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from gateway.config import ConfigError
from gateway.config.loader import fingerprint
from gateway.ingest.batch import GroupCommitter
from gateway.ingest.config import trust_warnings
from gateway.ingest.source import SourceContext
from gateway.processing import process_pending

if TYPE_CHECKING:  # the daemon is handed an App; it never builds one
    from gateway.app import App

log = logging.getLogger("ticketgate.daemon")

WORKER_INTERVAL = 30.0
WORKER_CHUNK = 5          # mails per worker call (one transaction each) when intake is quiet
WORKER_YIELD = 0.1        # while SMTP intake is busy: one mail, then this pause (new mail first)
STATUS_FILE = "daemon-status.json"
STATUS_EVERY = 5.0
CONFIG_CHECK = 3.0        # seconds between looks at conf/ for changed files


def sd_notify(message: str) -> bool:
    """Send one sd_notify(3) datagram if NOTIFY_SOCKET is set; no dependency needed."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.setblocking(False)          # a stuck receiver must never stall the loop
            sock.connect(address)
            sock.send(message.encode())
        return True
    except BlockingIOError:
        return False
    except OSError as exc:
        log.warning("sd_notify failed: %s", exc)
        return False


def watchdog_interval() -> float | None:
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1e6 / 2


def status_path(config) -> Path:
    return Path(config.data_dir) / STATUS_FILE


class Daemon:
    def __init__(self, app: App, *, imap: bool = True, smtp: bool = True,
                 worker: bool = True):
        self.app = app
        self.enable_worker = worker
        disabled = {name for name, on in (("imap", imap), ("smtp", smtp)) if not on}
        self.kinds = [kind for kind in app.parts.sources if kind.name not in disabled]
        self.sources: dict[str, list] = {kind.name: [] for kind in self.kinds}
        self.committer = GroupCommitter(lambda: self.app.store, on_commit=self._committed)
        self.scheduler = None
        self.started_at = time.time()
        self.processed = 0
        self.worker_runs = 0
        self.last_worker_run: float | None = None
        self.reloads = 0
        self.last_reload_error: str | None = None
        self._stopping: asyncio.Event | None = None
        self._work: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task] = []
        self.ready = threading.Event()
        self._conf_fingerprint = fingerprint(app.config.dir)

    # ---- start / stop -------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = self._stopping or asyncio.Event()
        self._work = asyncio.Event()
        config = self.app.config
        for warning in trust_warnings(config):   # as check-config says them
            log.warning("config: %s", warning)
        if self.enable_worker:
            await self._drain_pending("start")   # crash recovery before new mail
        self.committer.start()
        for kind in self.kinds:
            await self._start_sources(kind, config)
        self._start_scheduler()
        if self.enable_worker:
            self._tasks.append(self._loop.create_task(self._worker(), name="worker"))
        self._tasks.append(self._loop.create_task(self._status_writer(), name="status"))
        interval = watchdog_interval()
        if interval:
            self._tasks.append(self._loop.create_task(self._watchdog(interval), name="watchdog"))
        self.write_status()
        sd_notify(f"READY=1\nSTATUS=listening on {len(self.listeners)} listener(s), "
                  f"{len(self.pollers)} mail account(s)\nMAINPID={os.getpid()}")
        log.info("daemon ready: pid=%s sources=%s", os.getpid(),
                 ",".join(source.name for sources in self.sources.values()
                          for source in sources) or "-")
        self.ready.set()

    # ---- ingest sources (gateway/ingest/source.py) ----------------------------------------
    @property
    def listeners(self) -> list:
        return self.sources.get("smtp", [])

    @property
    def pollers(self) -> list:
        return [source.poller for source in self.sources.get("imap", [])]

    def _context(self) -> SourceContext:
        return SourceContext(self.committer, lambda: self.app.config, lambda: self.app.store,
                             self._committed_threadsafe)

    async def _start_sources(self, kind, config) -> None:
        for source in kind.build(config, self._context()):
            await source.start()
            self.sources[kind.name].append(source)
            self._schedule_wake(source)

    async def _stop_sources(self, kind, grace: float) -> None:
        sources, self.sources[kind.name] = self.sources[kind.name], []
        if self.scheduler is not None:
            for source in sources:
                if self.scheduler.get_job(f"wake:{source.name}"):
                    self.scheduler.remove_job(f"wake:{source.name}")
        await asyncio.gather(*(source.stop(grace) for source in sources))

    def _schedule_wake(self, source) -> None:
        """A source with ``poll_every`` (an IMAP account) is woken on that timer."""
        if self.scheduler is not None and source.poll_every:
            self.scheduler.add_job(source.wake, "interval", seconds=source.poll_every,
                                   id=f"wake:{source.name}", name=f"wake {source.name}",
                                   replace_existing=True)

    def _start_scheduler(self) -> None:
        self.scheduler = AsyncIOScheduler(event_loop=self._loop)
        if self.enable_worker:
            self.scheduler.add_job(self._work.set, "interval", seconds=WORKER_INTERVAL,
                                   id="worker", name="worker wake-up")
        for sources in self.sources.values():
            for source in sources:
                self._schedule_wake(source)
        self.scheduler.add_job(self._check_config_files, "interval", seconds=CONFIG_CHECK,
                               id="config-files", name="reload on changed conf/ files",
                               max_instances=1, coalesce=True)
        for job in self.app.parts.jobs:
            self.scheduler.add_job(self._run_job, "interval", args=[job.name, job.run],
                                   seconds=job.seconds, id=f"job:{job.name}", name=job.name,
                                   max_instances=1, coalesce=True)
        self.scheduler.start()

    async def _run_job(self, name: str, func) -> None:
        try:
            await asyncio.to_thread(func, self.app)
        except Exception:  # noqa: BLE001 - one job's bug must not stop the daemon
            log.exception("job %s failed", name)

    async def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT, shut down cleanly. Returns the exit code."""
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):   # before start: a stop during start counts
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self._hup)
        await self.start()
        await self._stopping.wait()
        await self.stop()
        return 0

    def _hup(self) -> None:
        if not self.ready.is_set():
            log.warning("daemon: SIGHUP during start ignored")
            return
        self._loop.create_task(self.reload())

    def request_stop(self) -> None:
        log.info("daemon: stop requested")
        if self._stopping is not None:
            self._stopping.set()

    async def stop(self) -> None:
        sd_notify("STOPPING=1")
        pushed = [kind for kind in self.kinds if kind.on_reload == "keep"]
        for kind in pushed:                  # stop listening; mid-DATA mails may finish
            await self._stop_sources(kind, 10.0)
        await self.committer.stop()          # in-flight mails committed and answered
        for kind in self.kinds:
            if kind not in pushed:
                await self._stop_sources(kind, 30.0)
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task                   # the worker finishes its current batch first
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        await asyncio.sleep(0.05)            # let the last 250s flush to their sockets
        self.write_status(stopped=True)
        log.info("daemon stopped")

    # ---- reload ---------------------------------------------------------------------------
    async def _check_config_files(self) -> None:
        """Reload when a file under conf/ changed (once per change, also when it is broken)."""
        now = await asyncio.to_thread(fingerprint, self.app.config.dir)
        if now != self._conf_fingerprint:
            log.info("daemon: files under %s changed", self.app.config.dir)
            await self.reload()

    async def reload(self) -> bool:
        log.info("daemon: reloading configuration")
        self._conf_fingerprint = await asyncio.to_thread(fingerprint, self.app.config.dir)
        try:
            config = await asyncio.to_thread(self.app.reload)
        except ConfigError as exc:
            self.last_reload_error = f"{len(exc.problems)} problem(s)"
            for problem in exc.problems:
                log.error("reload refused, keeping the old configuration: %s", problem)
            return False
        self.reloads += 1
        self.last_reload_error = None
        for kind in self.kinds:
            if kind.on_reload == "keep":     # e.g. listeners keep their sockets
                current = {kind.identity(source) for source in self.sources[kind.name]}
                wanted = {kind.identity(source) for source in kind.build(config, self._context())}
                if current != wanted:
                    log.warning("reload: %s sources changed; restart the daemon to apply",
                                kind.name)
            else:
                await self._stop_sources(kind, 30.0)
                await self._start_sources(kind, config)
        log.info("daemon: configuration reloaded from %s", config.dir)
        self.write_status()
        return True

    # ---- the inbound worker -----------------------------------------------------------------
    def _committed(self, results) -> None:
        if self._work is not None and any(not r.duplicate for r in results):
            self._work.set()

    def _committed_threadsafe(self, results) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._committed, results)

    async def _worker(self) -> None:
        while True:
            await self._work.wait()
            self._work.clear()
            await self._drain_pending("wake")

    async def _drain_pending(self, why: str) -> None:
        """Process pending mail, one transaction per mail, in small chunks; while SMTP intake
        is busy, pause between chunks, so the SQLite write lock and the GIL go to new mail
        first (a backlog never slows intake; it is worked off when the load drops)."""
        while True:
            limit = WORKER_CHUNK
            if time.monotonic() - self.committer.last_submit < 0.2:
                await asyncio.sleep(WORKER_YIELD)
                limit = 1
            try:
                outcomes = await asyncio.to_thread(process_pending, self.app.store,
                                                   self.app.pipeline, limit, 1)
            except Exception:  # noqa: BLE001 - never let the worker die
                log.exception("worker: processing run failed")
                return
            self.worker_runs += 1
            self.last_worker_run = time.time()
            self.processed += sum(o.status in ("done", "ignored") for o in outcomes)
            # the store is away, or nothing moved (every mail left pending): wait for a wake
            if len(outcomes) < limit or any(o.unavailable for o in outcomes) or \
                    all(o.status == "transient" for o in outcomes):
                return

    # ---- status, watchdog ---------------------------------------------------------------------
    async def _status_writer(self) -> None:
        while True:
            await asyncio.sleep(STATUS_EVERY)
            try:
                await asyncio.to_thread(self.write_status)
            except Exception:  # noqa: BLE001
                log.exception("status file not written")

    async def _watchdog(self, interval: float) -> None:
        while True:
            sd_notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    def status(self, stopped: bool = False) -> dict:
        return {"pid": os.getpid(), "running": not stopped, "started_at": self.started_at,
                "updated_at": time.time(), "conf_dir": str(self.app.config.dir),
                **{kind.status_key: [source.status() for source in self.sources.get(kind.name, [])]
                   for kind in self.app.parts.sources},
                "group_commit": {"batches": self.committer.batches,
                                 "mails": self.committer.mails},
                "worker": {"processed": self.processed, "runs": self.worker_runs,
                           "last_run": self.last_worker_run},
                "jobs": self.app.parts.names("jobs"),
                "reloads": self.reloads, "last_reload_error": self.last_reload_error}

    def write_status(self, stopped: bool = False) -> None:
        path = status_path(self.app.config)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.status(stopped), indent=1))
        os.replace(tmp, path)


def setup_logging(verbose: bool = False) -> None:
    """One event per line; no timestamp under systemd (journald adds its own)."""
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(fmt))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("mail.log", "apscheduler", "imapclient", "sqlalchemy", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run(app: App, **kw) -> int:
    return asyncio.run(Daemon(app, **kw).run())
