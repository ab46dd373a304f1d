"""Celery's configuration: the project's CELERY_* settings, as a plain dict of Celery's own
setting names (`CELERY_TASK_ACKS_LATE` → `task_acks_late`).

Celery looks its settings up about thirty times for every task it sends, most of them names
the project leaves at Celery's default. Through Django's settings object each such miss
raised and caught an exception: 0.4 ms of the 0.9 ms a send took (bench/engine_overhead.py).

The names are translated here rather than by Celery's `namespace="CELERY"`: three of them
(`CELERY_ACCEPT_CONTENT`, `CELERY_TASK_SERIALIZER`, `CELERY_TIMEZONE`) are also Celery 3's
names, so with the namespace every worker and beat warned that they are deprecated
(celery/celery#6366). A name that is not Celery's keeps its full name: Celery's Django fixup
reads `CELERY_DB_REUSE_MAX` so.

Imported by Celery when it first reads its configuration, after Django's settings are set.
"""

from celery.app.defaults import SETTING_KEYS
from django.conf import settings

PREFIX = "CELERY_"


def celery_name(name: str) -> str:
    own = name.removeprefix(PREFIX).lower()
    return own if own in SETTING_KEYS else name


CONFIG = {celery_name(name): getattr(settings, name) for name in dir(settings) if name.startswith(PREFIX)}
