"""The dependency rule of docs/architecture.md, checked on every run of the suite:

- only the composition root (gateway/app.py) and the CLI import ``filters`` or ``notifier``,
  and those two never import each other (import-linter contracts in pyproject.toml);
- nothing but the CLI imports the composition root;
- no import cycles between the parts of the gateway;
- config loading (gateway/config/) imports no application code.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent


def test_import_linter_contracts_are_kept():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is part of the test extras (pip install -e '.[test]')"
    out = subprocess.run([lint, "--no-cache"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "Contracts: 3 kept, 0 broken." in out.stdout


def test_config_loading_imports_no_application_code():
    graph = grimp.build_graph("gateway", "filters", "notifier", cache_dir=None)
    outside = sorted({(module, imported)
                      for module in graph.find_descendants("gateway.config") | {"gateway.config"}
                      for imported in graph.find_modules_directly_imported_by(module)
                      if not (imported == "gateway.config"
                              or imported.startswith("gateway.config."))})
    assert outside == []
