"""A copy of the sources a run measures: edits made during a long run never mix versions.

Child processes (workers, simulator, baselines) start in the copy's directory, and
`python -m` puts the working directory first on sys.path, so they all import it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("broker", "workers", "policies", "bench")


@contextmanager
def sources_snapshot(work_dir: Path) -> Iterator[Path]:
    """Copy the packages into `work_dir/src` and run children from there."""
    src = work_dir / "src"
    for name in PACKAGES:
        shutil.copytree(ROOT / name, src / name,
                        ignore=shutil.ignore_patterns("__pycache__", "results", "*.pyc"))
    previous = Path.cwd()
    os.chdir(src)
    try:
        yield src
    finally:
        os.chdir(previous)
