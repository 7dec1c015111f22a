"""Proof that a mail claiming an agent's From really comes from that agent.

Config ``agent_auth:`` in ticketgate.yaml (validated here, see docs/agents.md):

    agent_auth:
      methods: [token, dkim, authentication_results, smtp_auth]   # any subset, tried in order
      secret_file: /etc/ticketgate/agent.key    # or secret_env: TICKETGATE_AGENT_SECRET
      token_length: 16                          # hex digits of the HMAC kept in the address
      trusted_authserv_id: mx.example.com       # authserv-id of OUR MTA (Authentication-Results)
      reply_address_format: "helpdesk+t{ticket}-{token}@example.com"
      token_max_age_days: 30                    # 0 (default): tokens never expire

A From header proves nothing by itself. Without a proof the mail is a customer mail.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from gateway.config.schema import Key
from gateway.config.section import ConfigSection
from gateway.config.yamlload import Problem

METHODS = ("token", "dkim", "authentication_results", "smtp_auth")


@dataclass
class AuthSettings:
    methods: tuple[str, ...] = ()
    secret: bytes | None = None
    token_length: int = 16
    trusted_authserv_id: str | None = None
    reply_address_format: str | None = None
    token_max_age_days: int = 0   # 0: a token never expires; else it carries its issue day
    dnsfunc: object = None        # DKIM key lookup; None = dkimpy's resolver (tests inject one)
    _reply_re: re.Pattern | None = field(default=None, repr=False)

    def reply_address(self, login: str, ticket_id: int) -> str | None:
        """The address an agent notification uses as Reply-To for this agent and ticket."""
        if not self.reply_address_format or self.secret is None:
            return None
        return self.reply_address_format.format(ticket=ticket_id,
                                                token=make_token(self, login, ticket_id))

    def reply_tokens(self, addresses) -> list[tuple[int, str, str]]:
        """(ticket id, token, address) for each of ``addresses`` in our reply format."""
        if self._reply_re is None:
            return []
        out = []
        for address in addresses:
            m = self._reply_re.fullmatch((address or "").strip().lower())
            if m:
                out.append((int(m.group("ticket")), m.group("token"), address))
        return out


def _today() -> int:
    return int(time.time() // 86400)


def make_token(settings: AuthSettings, login: str, ticket_id: int,
               day: int | None = None) -> str:
    """The HMAC of (agent, ticket); with ``token_max_age_days`` it starts with the day it was
    issued (4 hex digits, days since 1970) and the HMAC covers that day too."""
    if not settings.token_max_age_days:
        mac = hmac.new(settings.secret or b"", f"{login}\0{ticket_id}".encode(),
                       hashlib.sha256)
        return mac.hexdigest()[:settings.token_length]
    day = _today() if day is None else day
    mac = hmac.new(settings.secret or b"", f"{login}\0{ticket_id}\0{day}".encode(),
                   hashlib.sha256)
    return f"{day:04x}" + mac.hexdigest()[:settings.token_length]


def check_token(settings: AuthSettings, login: str, ticket_id: int,
                token: str) -> tuple[bool, str]:
    """Is ``token`` ``login``'s for ``ticket_id`` and not expired? (ok, why not)."""
    day = None
    if settings.token_max_age_days:
        try:
            day = int(token[:4], 16)
        except ValueError:
            return False, "not a token"
    expected = make_token(settings, login, ticket_id, day)
    if not hmac.compare_digest(token.encode(), expected.encode()):
        return False, f"token is not {login}'s for ticket id {ticket_id}"
    if day is not None and not 0 <= _today() - day <= settings.token_max_age_days:
        return False, (f"{login}'s token for ticket id {ticket_id} expired (issued "
                       f"{_today() - day} days ago; token_max_age_days "
                       f"{settings.token_max_age_days})")
    return True, ""


def _compile_format(fmt: str) -> re.Pattern:
    parts = re.split(r"(\{ticket\}|\{token\})", fmt.lower())
    rx = "".join(r"(?P<ticket>\d{1,18})" if p == "{ticket}" else
                 r"(?P<token>[0-9a-f]{4,68})" if p == "{token}" else re.escape(p)
                 for p in parts)
    return re.compile(rx)


# ---- config ----------------------------------------------------------------------------------
def _reply_format(fmt: str) -> str | None:
    if fmt.count("{ticket}") != 1 or fmt.count("{token}") != 1 or "@" not in fmt:
        return "must be an address with {ticket} and {token} once each"
    return None


AGENT_AUTH = {
    "methods": Key(list, list, "proofs tried in order (none: no mail is believed to come "
                               "from an agent)", choices=METHODS),
    "secret_file": Key(str, None, "file holding the token secret (at least 16 bytes); "
                                  "relative to the conf dir"),
    "secret_env": Key(str, None, "environment variable holding the token secret instead"),
    "token_length": Key(int, 16, "hex digits of the HMAC kept in the reply address",
                        check=lambda n: None if 8 <= n <= 64 else "must be 8..64 hex digits"),
    "trusted_authserv_id": Key(str, None, "authserv-id of OUR MTA in Authentication-Results"),
    "reply_address_format": Key(str, None, "reply address with {ticket} and {token}, e.g. "
                                           "helpdesk+t{ticket}-{token}@example.com",
                                check=_reply_format),
    "token_max_age_days": Key(int, 0, "days a reply-address token proves the agent after "
                                      "it was sent (0: for ever); changing it voids the "
                                      "tokens already sent",
                              check=lambda n: None if 0 <= n <= 36500 else "must be 0..36500"),
}


def load_agent_auth(config, problems: list[Problem]) -> None:
    """``config.agent_auth`` from ticketgate.yaml ``agent_auth:`` (checked against
    AGENT_AUTH); here: the secret, and what each method needs."""
    raw = config.settings["agent_auth"]

    def bad(key, message):
        problems.append(Problem(raw.file, raw.line_of(key), f"agent_auth: {message}"))

    settings = AuthSettings(methods=tuple(raw["methods"]), token_length=raw["token_length"],
                            token_max_age_days=raw["token_max_age_days"])
    config.agent_auth = settings
    if raw["secret_file"] and raw["secret_env"]:
        bad("secret_env", "give secret_file or secret_env, not both")
    if raw["secret_file"]:
        path = Path(raw["secret_file"])
        path = path if path.is_absolute() else config.dir / path
        try:
            settings.secret = path.read_bytes().strip() or None
        except OSError as exc:
            bad("secret_file", f"cannot read secret_file {str(path)!r}: {exc.strerror}")
        if settings.secret is None and path.exists():
            bad("secret_file", f"secret_file {str(path)!r} is empty")
    elif raw["secret_env"]:
        value = os.environ.get(raw["secret_env"])
        if not value:
            bad("secret_env", f"environment variable {raw['secret_env']!r} is not set or empty")
        else:
            settings.secret = value.encode()
    if settings.secret is not None and len(settings.secret) < 16:
        bad("secret_file" if raw["secret_file"] else "secret_env",
            "the secret must be at least 16 bytes")
    fmt = raw["reply_address_format"]
    if fmt is not None:
        settings.reply_address_format = fmt
        settings._reply_re = _compile_format(fmt)
    if "token" in settings.methods and (settings.secret is None or fmt is None):
        bad("methods", "method 'token' needs secret_file or secret_env and "
                       "reply_address_format")
    if "authentication_results" in settings.methods and not raw["trusted_authserv_id"]:
        bad("methods", "method 'authentication_results' needs trusted_authserv_id")
    if raw["trusted_authserv_id"]:
        settings.trusted_authserv_id = raw["trusted_authserv_id"].lower()


AGENT_AUTH_SECTION = ConfigSection("agent_auth", load_agent_auth, keys=(("ticketgate.yaml", {
    "agent_auth": Key(dict, dict, "how an agent's mail proves who sent it (docs/agents.md)",
                      keys=AGENT_AUTH)}),))


# ---- proofs ---------------------------------------------------------------------------------
@dataclass
class Proof:
    method: str
    detail: str


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[-1].lower().rstrip(".")


def prove_without_ticket(settings: AuthSettings, agent, address: str, mail,
                         envelope) -> tuple[Proof | None, list[str]]:
    """Try the proofs that do not need the ticket (dkim, authentication_results, smtp_auth).
    Returns the first proof found and why each tried method failed."""
    failures: list[str] = []
    for method in settings.methods:
        if method == "token":
            continue
        check = {"dkim": _dkim, "authentication_results": _auth_results,
                 "smtp_auth": _smtp_auth}[method]
        proof, why = check(settings, agent, address, mail, envelope)
        if proof:
            return proof, failures
        failures.append(f"{method}: {why}")
    return None, failures


def prove_by_token(settings: AuthSettings, agent, mail, envelope, ticket,
                   merged_ids=()) -> tuple[Proof | None, str]:
    """A reply address naming THIS ticket (or one merged into it: ``merged_ids``) with this
    agent's HMAC token."""
    if "token" not in settings.methods:
        return None, "not enabled"
    addresses = list(envelope.rcpt_to) + [a.email for a in mail.to] + [a.email for a in mail.cc]
    found = settings.reply_tokens(addresses)
    if not found:
        return None, "no reply address with a token among the recipients"
    reasons = []
    for ticket_id, token, address in found:
        ok, why = check_token(settings, agent.login, ticket_id, token)
        if not ok:
            reasons.append(f"{address}: {why}")
            continue
        if ticket is None or (ticket.id != ticket_id and ticket_id not in merged_ids):
            here = f"ticket id {ticket.id}" if ticket is not None else "a new ticket"
            reasons.append(f"{address}: token for ticket id {ticket_id} used on {here}: "
                           f"refused")
            continue
        return Proof("token", f"reply address {address} carries {agent.login}'s token for "
                              f"this ticket"), ""
    return None, "; ".join(reasons)


def _smtp_auth(settings, agent, address, mail, envelope):
    user = (getattr(envelope, "authenticated_user", None) or "").strip().lower()
    if not user:
        return None, "not received over authenticated SMTP"
    if user == agent.login.lower() or user in agent.emails:
        return Proof("smtp_auth", f"authenticated SMTP session as {user!r}"), ""
    return None, f"authenticated SMTP user {user!r} is not {agent.login}"


# headers that pick the ticket: a signature must cover them (the latter two when present)
_MUST_SIGN = (b"subject", b"in-reply-to", b"references")


# Work per mail is bounded: a mail may carry thousands of DKIM-Signature headers (each one a
# parse of the whole mail, a DNS lookup and an RSA check). Only signatures whose d= is the
# agent's domain can prove anything; at most MAX_DKIM_CHECKS of them are verified, each key
# lookup waits at most DKIM_DNS_TIMEOUT seconds, and no new check starts after DKIM_BUDGET.
MAX_DKIM_CHECKS = 3
DKIM_DNS_TIMEOUT = 2
DKIM_BUDGET = 3.0
_SIG_DOMAIN = re.compile(rb"(?:^|;)\s*d\s*=\s*([^;\s]*)")


def _signature_domain(value: bytes) -> str:
    """The d= tag of one DKIM-Signature value, read without verifying anything."""
    m = _SIG_DOMAIN.search(re.sub(rb"\s+", b" ", value[:4096]))
    return m.group(1).decode("ascii", "replace").lower().rstrip(".") if m else ""


def _cached_dns(lookup):
    """``lookup`` asked at most once per name for one mail (signatures sharing a selector, or
    a slow resolver, cost one wait), with DKIM_DNS_TIMEOUT."""
    answers: dict = {}

    def dnsfunc(name, timeout=DKIM_DNS_TIMEOUT):
        if name not in answers:
            try:
                answers[name] = (lookup(name, timeout=min(timeout, DKIM_DNS_TIMEOUT)), None)
            except Exception as exc:  # noqa: BLE001 - given back to dkimpy for every asker
                answers[name] = (None, exc)
        value, exc = answers[name]
        if exc is not None:
            raise exc
        return value

    return dnsfunc


def _dkim(settings, agent, address, mail, envelope):
    import dkim  # start-up time: dkimpy (and dnspython) only for agents' DKIM-signed mail

    want = domain_of(address)
    try:
        d = dkim.DKIM(mail.raw)
        signatures = [value for name, value in d.headers if name.lower() == b"dkim-signature"]
    except Exception as exc:  # noqa: BLE001 - a malformed mail proves nothing
        return None, f"cannot read the message: {exc}"
    if not signatures:
        return None, "no DKIM-Signature"
    seen = []
    candidates = []
    for idx, value in enumerate(signatures):
        domain = _signature_domain(value)
        if domain == want:
            candidates.append(idx)
        elif len(seen) < MAX_DKIM_CHECKS:
            seen.append(f"signature {idx + 1} is for d={domain or '?'}, not {want}")
    if len(candidates) > MAX_DKIM_CHECKS:
        seen.append(f"{len(candidates)} signatures for d={want}: only the first "
                    f"{MAX_DKIM_CHECKS} checked")
    dnsfunc = _cached_dns(settings.dnsfunc or dkim.dnsplug.get_txt)
    deadline = time.monotonic() + DKIM_BUDGET
    for idx in candidates[:MAX_DKIM_CHECKS]:
        if time.monotonic() > deadline:
            seen.append(f"signature {idx + 1} not checked: DKIM time budget used up")
            break
        try:
            d = dkim.DKIM(mail.raw, timeout=DKIM_DNS_TIMEOUT)
            ok = d.verify(idx=idx, dnsfunc=dnsfunc)
            domain = (d.domain or b"").decode("ascii", "replace").lower()
        except Exception as exc:  # noqa: BLE001 - dkimpy raises on bad keys/signatures
            seen.append(f"signature {idx + 1} does not verify ({str(exc).split(' (got')[0]})")
            continue
        unsigned = [h for h in _MUST_SIGN if h == b"subject" or mail.header(h.decode())]
        unsigned = [h.decode() for h in unsigned if h not in (d.include_headers or ())]
        if not ok:
            seen.append(f"signature {idx + 1} (d={domain}) does not verify")
        elif domain != want:
            seen.append(f"signature {idx + 1} passes but d={domain}, not {want}")
        elif b"l" in (d.signature_fields or {}):
            seen.append(f"signature {idx + 1} has l= (body length): not accepted")
        elif unsigned:
            seen.append(f"signature {idx + 1} does not cover {', '.join(unsigned)} (they "
                        f"choose the ticket)")
        else:
            return Proof("dkim", f"DKIM signature d={domain} passes"), ""
    return None, "; ".join(seen)


_COMMENT = re.compile(r"\([^()]*\)")


def parse_authentication_results(value: str) -> tuple[str, list[dict]]:
    """(authserv-id, [{method, result, props...}]) of one Authentication-Results value."""
    text = _COMMENT.sub(" ", _COMMENT.sub(" ", value))
    parts = [p.strip() for p in text.split(";")]
    authserv = parts[0].split()[0].lower() if parts and parts[0].split() else ""
    results = []
    for part in parts[1:]:
        tokens = part.split()
        if not tokens or "=" not in tokens[0]:
            continue
        method, result = tokens[0].split("=", 1)
        entry = {"method": method.lower(), "result": result.lower()}
        for tok in tokens[1:]:
            if "=" in tok:
                k, v = tok.split("=", 1)
                entry[k.lower()] = v.strip('"').lower()
        results.append(entry)
    return authserv, results


def _auth_results(settings, agent, address, mail, envelope):
    if not getattr(envelope, "trust_authentication_results", False):
        # anyone can write this header: it proves something only when the MTA in front of
        # this source removes the ones it did not add itself
        return None, (f"source {getattr(envelope, 'source', '?')} is not marked "
                      f"trust_authentication_results")
    want = domain_of(address)
    for value in mail.header_all("Authentication-Results"):
        authserv, results = parse_authentication_results(value)
        if authserv != settings.trusted_authserv_id:
            continue
        # only the topmost header of our own MTA counts; anything below could be forged
        for r in results:
            if r["result"] != "pass":
                continue
            if r["method"] == "dkim" and r.get("header.d", "").rstrip(".") == want:
                return Proof("authentication_results",
                             f"{authserv}: dkim=pass header.d={want}"), ""
            if r["method"] == "dmarc" and r.get("header.from", "").rstrip(".") == want:
                return Proof("authentication_results",
                             f"{authserv}: dmarc=pass header.from={want}"), ""
        return None, f"{authserv} reports no dkim/dmarc pass for {want}"
    return None, f"no Authentication-Results from {settings.trusted_authserv_id}"
