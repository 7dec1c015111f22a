"""A seeded mutation fuzzer over the shared corpus (tests/mutations.py): every mutant is
accepted and processed; none escapes as an exception, none is quarantined or left pending
(quarantine is for our own failures), each ends as an article (or as a mail a filter
ignored), and no mutant costs more than a few seconds. SQLite and PostgreSQL."""
from __future__ import annotations

import os
import random
import time

import pytest

from gateway.intake import accept
from gateway.processing import process_inbound
from tests.corpus import MAIL_DIRS, corpus_dir, mail_files
from tests.mutations import mutants

# about 2,000 mutants in all (1,500 on SQLite, 500 on PostgreSQL); bench/fuzz.py for more
COUNT = int(os.environ.get("TICKETGATE_FUZZ_MUTANTS", "1500"))
SLOW = 5.0   # seconds one mutant may cost (generous: a bombed mail took 70 s before)


def seed_mails(limit: int = 300) -> list[bytes]:
    if not corpus_dir().is_dir():
        pytest.skip(f"corpus not found at {corpus_dir()} (set TICKETGATE_CORPUS)")
    files = [path for sub in MAIL_DIRS if (corpus_dir() / sub).is_dir()
             for path in mail_files(sub)]
    random.Random(7).shuffle(files)
    mails = [path.read_bytes() for path in files[:limit]]
    return [m for m in mails if m.strip() and len(m) < 500_000]


def run(app, count: int, seed: int):
    problems, slow = [], []
    for index, raw, names in mutants(seed_mails(), count, seed):
        started = time.monotonic()
        try:
            accepted = accept(app.store, raw)
            outcome = process_inbound(app.store, app.pipeline, accepted.inbound_id)
        except Exception as exc:  # noqa: BLE001 - the finding is the exception
            problems.append(f"mutant {index} ({'+'.join(names)}): {type(exc).__name__}: {exc}"[:300])
            continue
        cost = time.monotonic() - started
        if cost > SLOW:
            slow.append(f"mutant {index} ({'+'.join(names)}): {cost:.1f} s")
        if outcome.status not in ("done", "ignored", "skipped"):
            problems.append(f"mutant {index} ({'+'.join(names)}): {outcome.status}: "
                            f"{outcome.error}"[:300])
    return problems, slow


def test_mutants_on_sqlite(app):
    problems, slow = run(app, COUNT, seed=1)
    assert problems == [] and slow == []


def test_mutants_on_postgresql(make_app, postgres_url):
    app = make_app(database=postgres_url)
    problems, slow = run(app, COUNT // 3, seed=2)
    assert problems == [] and slow == []
