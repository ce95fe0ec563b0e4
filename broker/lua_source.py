"""Reads the broker's Lua scripts, splicing in the shared pieces they `--#include`.

Redis runs each script alone, so a piece two scripts share (how a lost call is counted)
is written once in its own file and copied into each script's source at load time.
"""

from __future__ import annotations

from importlib import resources

_INCLUDE = "--#include "


def lua_source(name: str) -> str:
    """The text of broker/lua/<name>, with every `--#include <file>` line replaced by it."""
    folder = resources.files("broker").joinpath("lua")
    lines = []
    for line in folder.joinpath(name).read_text(encoding="utf-8").splitlines():
        if line.startswith(_INCLUDE):
            lines.append(folder.joinpath(line[len(_INCLUDE):].strip()).read_text(encoding="utf-8"))
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"
