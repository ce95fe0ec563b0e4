"""Plug-ins are found by one scheme: every module of their package, no list to extend."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from broker.plugins import load_plugins
from policies.guards.base import build_content_guard, build_guards
from policies.routing import get_strategy
from workers.providers.base import registered_names


def test_a_new_module_in_the_package_is_found_without_being_listed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "probe_plugins"
    package.mkdir()
    (package / "__init__.py").write_text("FOUND: list[str] = []\n", encoding="utf-8")
    for name in ("alpha", "beta", "_private"):
        (package / f"{name}.py").write_text(
            f"from probe_plugins import FOUND\nFOUND.append({name!r})\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        load_plugins("probe_plugins")
        load_plugins("probe_plugins")  # a second call imports nothing again
        found = sys.modules["probe_plugins"].FOUND
        assert sorted(found) == ["alpha", "beta"]
    finally:
        for name in [m for m in sys.modules if m.startswith("probe_plugins")]:
            del sys.modules[name]


def test_every_built_in_kind_is_discovered_from_its_package() -> None:
    assert {"openai", "azure", "anthropic", "gemini", "vllm", "ollama"} <= set(registered_names())
    assert len(build_guards()) == 5
    for strategy in ("weighted", "least-busy", "lowest-latency", "lowest-cost", "most-headroom"):
        assert get_strategy(strategy) is not None
    for guard, options in (("pii", {}), ("injection", {}), ("deny_list", {"patterns": ["x"]})):
        assert build_content_guard(guard, options) is not None
