"""The stages that run inside Celery workers: policy, routing and model execution."""
