"""Benchmark: N generated postmaster rules x M generated mails through the filter engine,
in-process (no database). Prints mails/s and rules evaluated/s.

    .venv/bin/python bench/filters.py [--rules 200] [--mails 10000] [--seed 1]
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

# this file is called filters.py: make sure "import filters" finds the package, not us
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from filters import safe_regex  # noqa: E402
from filters.engine import FilterEngine, Limits  # noqa: E402
from filters.rules import RuleParser  # noqa: E402
from gateway.app import load_config  # noqa: E402
from gateway.mail import parse  # noqa: E402

WORDS = ("printer toner invoice outage router switch vpn password reset laptop monitor "
         "keyboard license renewal quote order delivery refund server backup disk mail "
         "calendar access badge phone headset network slow crash update").split()
DOMAINS = ["customer.test", "bigcorp.test", "vendor.test", "monitoring.example.com",
           "partner.test", "example.org"]


def make_rules(n: int, rng: random.Random) -> list[dict]:
    rules = []
    for i in range(n):
        kind = i % 5
        word = rng.choice(WORDS)
        if kind == 0:
            match = {"subject": rf"\b{word}\b"}
        elif kind == 1:
            match = {"from": rf"@{rng.choice(DOMAINS).replace('.', chr(92) + '.')}$",
                     "subject": rf"(?P<w>{word}|{rng.choice(WORDS)})"}
        elif kind == 2:
            match = {"body": rf"{word} (number|no\.?) ?(?P<n>\d+)"}
        elif kind == 3:
            match = {"X-Customer-Tier": r"^(gold|platinum)$", "not": {"subject": word}}
        else:
            match = {"to": r"^(hardware|printers)@", "subject": rf"^\[{word[:3].upper()}\]"}
        sets = {"dynamic_fields": {"Rule": f"r{i}"}}
        if kind == 1:
            sets["title"] = "${subject.w}"
        rules.append({"name": f"rule-{i}", "match": match, "set": sets})
    return rules


def make_mail(i: int, rng: random.Random) -> bytes:
    words = rng.sample(WORDS, 4)
    subject = " ".join(words)
    if i % 7 == 0:
        subject = f"[{words[0][:3].upper()}] {subject}"
    body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 400)))
    if i % 3 == 0:
        body += f" {words[1]} number {rng.randint(1, 99999)}"
    headers = [f"From: User {i} <u{i}@{rng.choice(DOMAINS)}>",
               f"To: {rng.choice(['support', 'hardware', 'printers'])}@example.com",
               f"Subject: {subject}", f"Message-ID: <b{i}@bench.test>",
               "Date: Mon, 23 Nov 2026 10:00:00 +0100", "MIME-Version: 1.0",
               "Content-Type: text/plain; charset=utf-8"]
    headers += [f"Received: from relay{j}.test by mx.example.com" for j in range(3)]
    if i % 4 == 0:
        headers.append(f"X-Customer-Tier: {rng.choice(['gold', 'silver', 'platinum'])}")
    return ("\r\n".join(headers) + "\r\n\r\n" + body + "\r\n").encode()


def to_linedicts(obj):
    """Plain dicts -> the LineDict/LineList the rule parser expects from YAML."""
    from gateway.config.yamlload import LineDict, LineList

    if isinstance(obj, dict):
        out = LineDict({k: to_linedicts(v) for k, v in obj.items()})
        out.file, out.line, out.key_lines = "bench", 1, {}
        return out
    if isinstance(obj, list):
        out = LineList(to_linedicts(v) for v in obj)
        out.file, out.line, out.item_lines = "bench", 1, [1] * len(obj)
        return out
    return obj


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", type=int, default=200)
    ap.add_argument("--mails", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    config = load_config(Path(__file__).resolve().parent.parent / "conf")
    problems: list = []
    started = time.perf_counter()
    rules = RuleParser(config, problems).parse_file(to_linedicts(make_rules(args.rules, rng)),
                                                    "bench")
    if problems:
        print("\n".join(map(str, problems)), file=sys.stderr)
        return 1
    compile_s = time.perf_counter() - started
    engine = FilterEngine(rules, Limits(), config)
    mails = [parse(make_mail(i, rng)) for i in range(args.mails)]
    started = time.perf_counter()
    evaluated = matched = lines = 0
    for m in mails:
        out = engine.run(m)
        evaluated += out.evaluated
        matched += len(out.matched)
        lines += len(out.trace)
    elapsed = time.perf_counter() - started
    print(f"engine: {safe_regex.ENGINE} (per-search timeout: {safe_regex.HAS_TIMEOUT})")
    print(f"{len(rules)} rules compiled and checked in {compile_s * 1000:.0f} ms")
    print(f"{len(mails)} mails x {len(rules)} rules in {elapsed:.2f} s: "
          f"{len(mails) / elapsed:,.0f} mails/s, {evaluated / elapsed:,.0f} rules evaluated/s")
    print(f"{matched / len(mails):.1f} rules matched per mail, {lines / len(mails):.0f} trace "
          f"lines per mail")
    return 0


if __name__ == "__main__":
    sys.exit(main())
