"""What every sub-command shares: where conf/ is, and opening the app from the options."""
from __future__ import annotations

import os
from pathlib import Path


def default_conf() -> str:
    """``$TICKETGATE_CONF``, else ``./conf`` when it holds a ticketgate.yaml, else /etc."""
    env = os.environ.get("TICKETGATE_CONF")
    if env:
        return env
    if Path("conf/ticketgate.yaml").exists():
        return "conf"
    return "/etc/ticketgate"


def load_app(args):
    """Load conf/ and open the store (``--conf``, ``--database``); raises ConfigError."""
    # imported here, not at the top: building the parser stays cheap (start-up time)
    from gateway.app import open_app

    return open_app(args.conf, database=getattr(args, "database", None))
