import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datamate.settings")

app = Celery("datamate")
app.config_from_object("datamate.celery_config:CONFIG")
app.autodiscover_tasks()
