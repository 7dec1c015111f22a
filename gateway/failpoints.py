"""Fail points for crash tests: ``TICKETGATE_CRASH_<NAME>=1`` in the environment makes the
process SIGKILL itself at that point, exactly as a power cut or OOM kill would. Inert (one
dictionary lookup) when unset."""
from __future__ import annotations

import os
import signal


def failpoint(name: str) -> None:
    if os.environ.get(f"TICKETGATE_CRASH_{name}"):
        os.kill(os.getpid(), signal.SIGKILL)
