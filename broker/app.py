"""The Celery app: `celery -A broker.app worker` and `celery -A broker.app flower` use it.

Importing this module reads the catalog (AIBROKER_CONFIG), so only workers, Flower and
the CLI import it; producers build their own app with `create_app`.
"""

from broker.celery_app import create_app

app = create_app()
celery = app
