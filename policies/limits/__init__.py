"""Limits: capacity windows and local gates, separate from where their state lives."""
