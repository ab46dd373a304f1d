"""Celery's configuration: the project's CELERY_* settings, as a plain dict.

Celery looks its settings up about thirty times for every task it sends, most of them names
the project leaves at Celery's default. Through Django's settings object each such miss
raised and caught an exception: 0.4 ms of the 0.9 ms a send took (bench/engine_overhead.py).
Imported by Celery when it first reads its configuration, after Django's settings are set.
"""

from django.conf import settings

CONFIG = {name: getattr(settings, name) for name in dir(settings) if name.startswith("CELERY_")}
