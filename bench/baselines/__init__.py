"""Baselines measured in the same run as the broker: a naive Celery app and direct clients."""
