"""The layering contracts in pyproject.toml hold, and an upward import breaks them."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports() -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)


def test_the_contracts_hold() -> None:
    result = _lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_inside_a_function_breaks_the_layers() -> None:
    probe = ROOT / "broker" / f"_contract_probe_{uuid.uuid4().hex[:8]}.py"
    probe.write_text('"""Throw-away module."""\n\n\ndef reach_up() -> None:\n'
                     '    """Import a stage from the kernel."""\n'
                     '    import workers.tasks  # noqa: F401\n', encoding="utf-8")
    try:
        result = _lint_imports()
    finally:
        probe.unlink()
    assert result.returncode != 0
    assert "workers above policies above the broker BROKEN" in result.stdout
    assert probe.stem in result.stdout
