"""An agent's own words in a reply: the text without everything from the first reply marker
on ("On ... wrote:", "-----Original Message-----", "Am ... schrieb", an Outlook "From:" block
after a "____" line) and without a trailing block of ``>`` quoted lines."""
from __future__ import annotations

import re

MARKERS = [re.compile(p, re.IGNORECASE) for p in (
    r"^On .{0,300}wrote:\s*$", r"^-{2,}\s*Original Message\s*-{2,}\s*$",
    r"^Am .{0,300}schrieb.{0,100}:\s*$", r"^_{10,}\s*$", r"^-{2,}\s*Ursprüngliche Nachricht",
    r"^Le .{0,300}a écrit\s*:\s*$")]


def customer_text(body: str) -> str:
    """The agent's own words: cut at the first reply marker, drop trailing quoted lines."""
    lines = (body or "").splitlines()
    for i, line in enumerate(lines):
        if any(m.match(line.strip()) for m in MARKERS):
            lines = lines[:i]
            break
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith(">")):
        lines.pop()
    return "\n".join(lines).strip("\n")
