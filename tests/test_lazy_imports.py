"""A function-level import is there for start-up time only, and says so: an import inside a
function must carry a comment (on its line or the line above) naming why it is lazy. An
import that only dodges a cycle is a design bug the dependency rule should catch instead."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def lazy_imports():
    for package in ("gateway", "filters", "notifier"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            lines = path.read_text().splitlines()
            for node in ast.walk(ast.parse("\n".join(lines))):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                for sub in ast.walk(node):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        yield path.relative_to(ROOT), sub.lineno, lines


def says_why(lines: list[str], line: int) -> bool:
    """A comment on the import's line, or above it in the run of imports it belongs to."""
    if "#" in lines[line - 1]:
        return True
    for text in reversed(lines[:line - 1]):
        text = text.strip()
        if text.startswith("#"):
            return True
        if text and not text.startswith(("from ", "import ", ")")) and \
                not text.endswith((",", "(")):
            return False
    return False


def test_every_function_level_import_says_why():
    silent = sorted({f"{path}:{line}" for path, line, lines in lazy_imports()
                     if not says_why(lines, line)})
    assert silent == []
