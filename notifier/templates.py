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

from dataclasses import dataclass
from pathlib import Path

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from gateway.config import ConfigSection, Problem


@dataclass
class Template:
    name: str
    subject: jinja2.Template
    body: jinja2.Template

    def render(self, **context) -> tuple[str, str]:
        """(subject, body). A template that fails at run time (say ``{{ 1 / 0 }}``, or the
        sandbox refusing something) raises RenderError, which callers record; it must never
        fail the processing of the mail that caused it."""
        try:
            return self.subject.render(**context).strip(), self.body.render(**context)
        except Exception as exc:  # noqa: BLE001 - anything a template can do wrong
            raise RenderError(f"template {self.name!r}: {type(exc).__name__}: {exc}") from exc


class RenderError(Exception):
    pass


def environment(root: Path) -> SandboxedEnvironment:
    return SandboxedEnvironment(loader=jinja2.FileSystemLoader(str(root)), autoescape=False,
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
