"""Built-in pre-filters, run before the admin's postmaster filters, in this order:
trusted control headers, loop/auto-submitted, bounce, spam. Each is switchable in
ticketgate.yaml under ``prefilters`` (all on by default)."""
from __future__ import annotations

from filters.builtin.verdict import Verdict

PREFILTER_DEFAULTS = {
    "trusted_headers": {"enabled": True},
    "auto_submitted": {"enabled": True, "loop_header": "X-Ticketgate-Loop",
                       "noreply_regex": None},
    "bounce": {"enabled": True},
    "spam": {"enabled": True, "action": "mark", "queue": None},
}


def settings(config) -> dict:
    raw = (config.raw.get("prefilters") or {}) if config is not None else {}
    out = {}
    for name, defaults in PREFILTER_DEFAULTS.items():
        merged = dict(defaults)
        merged.update(raw.get(name) or {})
        out[name] = merged
    return out


def run_prefilters(config, mail, envelope) -> list[Verdict]:
    from filters.builtin import auto_submitted, spam, trusted_headers

    conf = settings(config)
    verdicts = []
    if conf["trusted_headers"]["enabled"]:
        verdicts.append(trusted_headers.check(mail, trusted=bool(envelope.trusted)))
    if conf["auto_submitted"]["enabled"]:
        kwargs = {"system_addresses": [sa.address for sa in config.system_addresses],
                  "loop_header": conf["auto_submitted"]["loop_header"],
                  "own_domains": [config.fqdn] if config.fqdn != "localhost" else []}
        if conf["auto_submitted"]["noreply_regex"]:
            kwargs["noreply_regex"] = conf["auto_submitted"]["noreply_regex"]
        verdicts.append(auto_submitted.check(mail, **kwargs))
    if conf["bounce"]["enabled"]:
        try:
            from filters.builtin import bounce
        except ImportError:  # pragma: no cover - during bring-up only
            bounce = None
        if bounce is not None:
            verdicts.append(bounce.check(mail))
    if conf["spam"]["enabled"]:
        verdict = spam.check(mail)
        if verdict.hit:
            action = conf["spam"]["action"]
            data = dict(verdict.data)
            if action == "drop":
                data["ignore"] = True
            elif action == "queue" and conf["spam"]["queue"]:
                data["settings"] = {"set": {"queue": conf["spam"]["queue"]}}
            verdict = Verdict(verdict.name, True, f"{verdict.reason} (action: {action})", data)
        verdicts.append(verdict)
    return verdicts
