"""Auto-response and notification templates: sandboxed Jinja2, loaded and checked with the
configuration, so a broken template is a config error (file and line), not a 3 a.m. surprise.

A template file is a ``Subject:`` line, a blank line, then the body:

    Subject: {{ ticket.hook }} We have received your request

    Dear {{ customer.name or customer.email }}, ...

In scope: ``ticket`` (number, title, queue, state, priority, owner, hook), ``article`` (subject,
body, from, to), ``customer`` (name, email), ``queue`` (name, salutation, signature), ``agent``
(for notifications: login, name), ``event`` and ``config`` (fqdn). Notification templates live
in ``templates/notifications/<EventName>.txt``; events without one use a built-in text.
"""
from __future__ import annotations

import contextvars
import functools
import re
import time
from dataclasses import dataclass
from pathlib import Path

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from gateway.config import ConfigSection, Problem


# Render budget: a template may loop or build a huge string ({{ 'x' * 10**9 }} used 3.9 GB).
# Every call, filter, operator, attribute lookup and range() step checks the time; sizes are
# checked before a string or list is built; the rendered text is capped.
RENDER_SECONDS = 2.0
MAX_SUBJECT = 2_000            # characters of a rendered subject
MAX_BODY = 1_000_000           # characters of a rendered body
MAX_BUILT = 2_000_000          # items of a string/list made by *, + or a filter/call
MAX_INT_ARG = 1_000_000        # an integer argument to a call or filter (widths, counts)
MAX_RANGE = 10_000             # items of one range()
MAX_POWER_BITS = 4_096         # size of a ** result
_WIDE_FORMAT = re.compile(r"%(\([^)]*\))?[-#0 +]*(\*|\d{5,}|\d*\.(\*|\d{5,}))|\{[^}]*\d{5,}")

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("render_deadline",
                                                                        default=None)


class RenderBudgetExceeded(SecurityError):
    pass


def _tick() -> None:
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline:
        raise RenderBudgetExceeded(f"render took longer than {RENDER_SECONDS} s")


def _check_size(value, what="result") -> None:
    if isinstance(value, (str, bytes, list, tuple)) and len(value) > MAX_BUILT:
        raise RenderBudgetExceeded(f"{what} longer than {MAX_BUILT}")


def _check_args(args, kwargs) -> None:
    for arg in (*args, *kwargs.values()):
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_INT_ARG:
            raise RenderBudgetExceeded(f"argument {arg} larger than {MAX_INT_ARG}")


def _check_format(fmt) -> None:
    """'%099999d' % 1 or '{:>99999999}'.format(1) would build the padding first."""
    if isinstance(fmt, str) and _WIDE_FORMAT.search(fmt):
        raise RenderBudgetExceeded("format width or precision too large")


class _TickingRange:
    """range() for templates: at most MAX_RANGE items, the time checked while iterating."""

    def __init__(self, rng: range):
        self.rng = rng

    def __len__(self):
        return len(self.rng)

    def __iter__(self):
        for i, item in enumerate(self.rng):
            if not i % 64:
                _tick()
            yield item


def _budget_range(*args):
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise RenderBudgetExceeded(f"range() of more than {MAX_RANGE} items")
    return _TickingRange(rng)


def _guarded_filter(name, func):
    @functools.wraps(func)   # keeps jinja's pass_context/pass_environment marks
    def guarded(*args, **kwargs):
        _tick()
        _check_args(args[1:], kwargs)
        if name == "format":
            _check_format(next((a for a in args if isinstance(a, str)), None))
        result = func(*args, **kwargs)
        _check_size(result)
        return result

    return guarded


class BudgetedEnvironment(SandboxedEnvironment):
    """The sandbox plus the render budget above (also at compile time: a refused constant
    expression is not folded, so loading a template never builds a huge value)."""

    intercepted_binops = frozenset(["*", "**", "+", "%", "//"])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.globals["range"] = _budget_range
        self.filters = {name: _guarded_filter(name, f) for name, f in self.filters.items()}

    def call_binop(self, context, operator, left, right):
        _tick()
        if operator == "*":
            seq, n = (left, right) if isinstance(right, int) else (right, left)
            if isinstance(seq, (str, bytes, list, tuple)) and isinstance(n, int) \
                    and len(seq) * n > MAX_BUILT:
                raise RenderBudgetExceeded(f"'*' would build more than {MAX_BUILT} items")
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and \
                    right * max(abs(left).bit_length(), 1) > MAX_POWER_BITS:
                raise RenderBudgetExceeded("'**' result too large")
            if isinstance(right, (int, float)) and abs(right) > MAX_POWER_BITS:
                raise RenderBudgetExceeded("'**' exponent too large")
        elif operator == "+":
            if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)) \
                    and len(left) + len(right) > MAX_BUILT:
                raise RenderBudgetExceeded(f"'+' would build more than {MAX_BUILT} items")
        elif operator == "%":
            _check_format(left)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - jinja's signature
        _tick()
        _check_args(args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        _check_size(result)
        return result

    def getattr(self, obj, attribute):
        _tick()
        if attribute in ("format", "format_map"):
            _check_format(obj)
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        _tick()
        return super().getitem(obj, argument)


def _render_capped(template: jinja2.Template, limit: int, context: dict) -> str:
    out: list[str] = []
    size = 0
    for chunk in template.generate(**context):
        size += len(chunk)
        if size > limit:
            raise RenderBudgetExceeded(f"rendered text longer than {limit} characters")
        out.append(chunk)
        _tick()
    return "".join(out)


@dataclass
class Template:
    name: str
    subject: jinja2.Template
    body: jinja2.Template

    def render(self, **context) -> tuple[str, str]:
        """(subject, body). A template that fails at run time (say ``{{ 1 / 0 }}``, or the
        sandbox refusing something) raises RenderError, which callers record; it must never
        fail the processing of the mail that caused it."""
        token = _deadline.set(time.monotonic() + RENDER_SECONDS)
        try:
            return (_render_capped(self.subject, MAX_SUBJECT, context).strip(),
                    _render_capped(self.body, MAX_BODY, context))
        except Exception as exc:  # noqa: BLE001 - anything a template can do wrong
            raise RenderError(f"template {self.name!r}: {type(exc).__name__}: {exc}") from exc
        finally:
            _deadline.reset(token)


class RenderError(Exception):
    pass


def environment(root: Path) -> SandboxedEnvironment:
    return BudgetedEnvironment(loader=jinja2.FileSystemLoader(str(root)), autoescape=False,
                                undefined=jinja2.ChainableUndefined, keep_trailing_newline=True)


def compile_text(env: SandboxedEnvironment, name: str, text: str) -> Template:
    """Split ``Subject:`` from the body and compile both (TemplateSyntaxError on trouble)."""
    lines = text.splitlines()
    if not lines or not lines[0].lower().startswith("subject:"):
        raise ValueError("the first line must be 'Subject: ...'")
    subject = lines[0].split(":", 1)[1].strip()
    rest, offset = lines[1:], 1
    if rest and not rest[0].strip():
        rest, offset = rest[1:], 2
    compiled_subject = env.from_string(subject)
    try:
        body = env.from_string("\n".join(rest) + "\n")
    except jinja2.TemplateSyntaxError as exc:
        exc.lineno += offset  # make it a line of the file
        raise
    return Template(name, compiled_subject, body)


def load_template(root: Path, name: str, problems: list[Problem], where: str) -> Template | None:
    path = root / name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(where, 0, f"template {name!r}: cannot read {path}: {exc}"))
        return None
    try:
        return compile_text(environment(root), name, text)
    except jinja2.TemplateSyntaxError as exc:
        problems.append(Problem(str(path), exc.lineno, f"template syntax error: {exc.message}"))
    except ValueError as exc:
        problems.append(Problem(str(path), 1, f"template: {exc}"))
    return None


def load_templates(config, problems: list[Problem]) -> None:
    """Compile every template a queue names, and every notification template present."""
    root = config.dir / "templates"
    templates: dict[str, Template] = {}
    tried: set[str] = set()
    queues_file = str(config.dir / "queues.yaml")
    for queue in config.queues.values():
        for kind, name in queue.auto_responses.items():
            if name not in tried:
                tried.add(name)
                template = load_template(root, name, problems,
                                         f"{queues_file} (queue {queue.name!r} {kind})")
                if template is not None:
                    templates[name] = template
    notifications = root / "notifications"
    if notifications.is_dir():
        for path in sorted(notifications.glob("*.txt")):
            name = f"notifications/{path.name}"
            template = load_template(root, name, problems, str(path))
            if template is not None:
                templates[name] = template
                if config.files is not None:
                    config.files.append(path)
    config.templates = templates


SECTION = ConfigSection("templates", load_templates)
