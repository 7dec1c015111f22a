"""Group commit for the SMTP/LMTP listeners: the mails of many concurrent clients are stored
in one transaction (``intake.accept_many``), so throughput does not collapse to one fsync per
mail. Each client still waits for *its* batch's commit before it is told 250.

There is no artificial delay: while one batch commits (in a worker thread, off the event
loop), new mails queue up and become the next batch. One client alone gets one commit per
mail; fifty clients share commits.

One mail must never fail the others: when a group commit fails for a reason that is not the
database's own trouble (a row the database refuses, e.g. a value it cannot store), every mail
of that group is retried alone, so the guilty one gets its 451 and the rest their 250. When the
database itself is unavailable (``is_transient``: locked, connection lost, disk full) retrying
alone would only multiply the wait, so the whole group answers 451 as before.
"""
from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from gateway.failpoints import failpoint
from gateway.intake import Accepted, Envelope, accept, accept_many
from gateway.store.db import is_transient

log = logging.getLogger("ticketgate.ingest")


class GroupCommitter:
    def __init__(self, store_of: Callable, *, max_batch: int = 200,
                 on_commit: Callable[[list[Accepted]], None] | None = None):
        self._store_of = store_of          # callable: the current Store (survives reloads)
        self.max_batch = max_batch
        self.on_commit = on_commit
        self._queue: list[tuple[bytes, Envelope, asyncio.Future]] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._idle: asyncio.Event | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="group-commit")
        self.batches = 0
        self.mails = 0
        self.last_submit = 0.0             # monotonic; the worker yields while intake is busy
        self.retried_alone = 0             # groups that failed and were committed mail by mail

    def start(self) -> None:
        self._wake, self._idle = asyncio.Event(), asyncio.Event()
        self._idle.set()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    async def submit(self, raw: bytes, envelope: Envelope) -> Accepted:
        """Store one mail; returns after its batch is committed, raises if that failed."""
        if self._task is None or self._task.done():
            raise RuntimeError("group committer is not running")
        self.last_submit = time.monotonic()
        future = asyncio.get_running_loop().create_future()
        self._queue.append((raw, envelope, future))
        self._idle.clear()
        self._wake.set()
        # shield: a client that hangs up mid-commit must not cancel the commit of the others
        return await asyncio.shield(future)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
                store = self._store_of()
                items = [(raw, env) for raw, env, _ in batch]
                try:
                    results = await loop.run_in_executor(self._executor, accept_many, store,
                                                         items)
                except Exception as exc:  # noqa: BLE001 - each waiting client answers 451
                    if len(batch) == 1 or is_transient(exc):
                        log.error("group commit of %d mail(s) failed: %s", len(batch),
                                  short_error(exc))
                        for _, _, future in batch:
                            if not future.done():
                                future.set_exception(exc)
                        continue
                    log.warning("group commit of %d mails failed (%s): committing each alone",
                                len(batch), short_error(exc))
                    self.retried_alone += 1
                    results = await loop.run_in_executor(self._executor, self._one_by_one,
                                                         store, batch)
                failpoint("SMTP_AFTER_COMMIT")   # crash tests: committed, no 250 sent yet
                self.batches += 1
                self.mails += self._answer(batch, results)
            if not self._queue:
                self._idle.set()

    @staticmethod
    def _one_by_one(store, batch) -> list:
        """Each mail in its own transaction (worker thread): an Accepted or the exception."""
        out = []
        for raw, env, _ in batch:
            try:
                out.append(accept(store, raw, env))
            except Exception as exc:  # noqa: BLE001 - this mail's 451, nobody else's
                log.error("mail from <%s> could not be stored: %s", env.mail_from,
                          short_error(exc))
                out.append(exc)
        return out

    def _answer(self, batch, results) -> int:
        """Wake each waiting client with its own result; tell ``on_commit`` what was stored;
        return how many were stored."""
        stored = []
        for (_, _, future), result in zip(batch, results):
            if isinstance(result, BaseException):
                if not future.done():
                    future.set_exception(result)
                continue
            stored.append(result)
            if not future.done():
                future.set_result(result)
        if self.on_commit is not None and stored:
            try:
                self.on_commit(stored)
            except Exception:  # noqa: BLE001
                log.exception("on_commit hook failed")
        return len(stored)

    async def drain(self) -> None:
        """Wait until every submitted mail has been committed (or failed)."""
        if self._idle is not None:
            await self._idle.wait()

    async def stop(self) -> None:
        await self.drain()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)


def short_error(exc: BaseException) -> str:
    """One line naming the error, never the SQL statement and parameters (which quote the mail)."""
    text = str(getattr(exc, "orig", None) or exc).splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"
