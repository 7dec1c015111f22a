"""The common result of every built-in pre-filter (auto-submitted, bounce, spam)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """What one pre-filter decided about one mail.

    ``name``   the filter ("auto_submitted", "bounce", "spam").
    ``hit``    True when the filter matched (machine-generated / bounce / spam).
    ``reason`` a short human-readable explanation naming the header or text that decided,
               e.g. ``"Auto-Submitted: auto-replied"``; empty when nothing matched.
    ``data``   filter-specific details (see each filter's ``check`` docstring).
    """

    name: str
    hit: bool
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:  # ``if check(mail): ...`` reads naturally
        return self.hit

    @classmethod
    def miss(cls, name: str, reason: str = "", **data: Any) -> "Verdict":
        return cls(name=name, hit=False, reason=reason, data=dict(data))
