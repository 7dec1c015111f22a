#!/usr/bin/env python3
"""Mutation fuzzing at volume: N mutants of the shared corpus's mails (tests/mutations.py)
through accept + process, in-process, on SQLite (or --database URL). Prints how many ended as
articles, failed, were quarantined or raised, the slowest mutants and the cost per mutation
kind; exits 1 if any failed.

    .venv/bin/python bench/fuzz.py                 # 20,000 mutants, seed 1
    .venv/bin/python bench/fuzz.py -n 2000 --seed 3 --database postgresql+psycopg://...
"""
from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.app import open_app  # noqa: E402
from gateway.intake import accept  # noqa: E402
from gateway.processing import process_inbound  # noqa: E402
from tests.corpus import MAIL_DIRS, corpus_dir, mail_files  # noqa: E402
from tests.mutations import mutants  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--database")
    args = ap.parse_args()
    files = [p for sub in MAIL_DIRS if (corpus_dir() / sub).is_dir() for p in mail_files(sub)]
    if not files:
        print(f"no corpus at {corpus_dir()}", file=sys.stderr)
        return 2
    random.Random(7).shuffle(files)
    seeds = [m for m in (p.read_bytes() for p in files) if m.strip() and len(m) < 500_000]
    tmp = Path(tempfile.mkdtemp(prefix="tg-fuzz-"))
    shutil.copytree(ROOT / "conf", tmp / "conf")
    app = open_app(tmp / "conf", database=args.database or f"sqlite:///{tmp / 'fuzz.db'}")
    statuses, bad, slowest = Counter(), [], []
    cost = defaultdict(list)
    started = time.monotonic()
    for index, raw, names in mutants(seeds, args.n, args.seed):
        t0 = time.monotonic()
        try:
            outcome = process_inbound(app.store, app.pipeline, accept(app.store, raw).inbound_id)
            status = outcome.status
            if status not in ("done", "ignored", "skipped"):
                bad.append(f"{index} {'+'.join(names)}: {status}: {str(outcome.error)[:200]}")
        except Exception as exc:  # noqa: BLE001 - counted and shown
            status = "raised"
            bad.append(f"{index} {'+'.join(names)}: {type(exc).__name__}: {str(exc)[:200]}")
        took = time.monotonic() - t0
        statuses[status] += 1
        for name in names:
            cost[name].append(took)
        slowest.append((took, index, "+".join(names)))
    wall = time.monotonic() - started
    slowest.sort(reverse=True)
    print(f"{args.n} mutants in {wall:.1f} s ({args.n / wall:.0f} mutants/s): {dict(statuses)}")
    print("slowest: " + ", ".join(f"#{i} {n} {t:.2f}s" for t, i, n in slowest[:5]))
    for name, values in sorted(cost.items(), key=lambda kv: -max(kv[1])):
        values.sort()
        print(f"  {name:<18} n={len(values):<6} median {values[len(values) // 2] * 1000:7.1f} ms"
              f"  max {values[-1]:7.2f} s")
    for line in bad[:30]:
        print("  FAIL " + line)
    app.store.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
