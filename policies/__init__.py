"""Governance rules as pure decisions over data: guards, limits and routing strategies."""
