"""One discovery scheme for every kind of plug-in: each module of its package.

Providers, presets, guards and routing strategies register themselves with a decorator when
their module is imported; importing every module of the kind's package is all discovery
there is, so adding a plug-in is adding one file (no list to extend). Modules whose name
starts with an underscore are skipped.
"""

from __future__ import annotations

import importlib
import pkgutil

_loaded: set[str] = set()


def load_plugins(package: str) -> None:
    """Import every module and subpackage of `package` once."""
    if package in _loaded:
        return
    module = importlib.import_module(package)
    for found in pkgutil.iter_modules(module.__path__):
        if not found.name.startswith("_"):
            importlib.import_module(f"{package}.{found.name}")
    _loaded.add(package)
