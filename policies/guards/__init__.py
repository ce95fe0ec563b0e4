"""Guards: ordered admission checks, each returning one verdict shape."""

from policies.guards.base import (
    DEFAULT_GUARDS,
    Guard,
    PolicyContext,
    Verdict,
    build_guards,
    register_guard,
)

__all__ = ["DEFAULT_GUARDS", "Guard", "PolicyContext", "Verdict", "build_guards",
           "register_guard"]
