"""Plain Celery tasks: the baseline `bench/engine_overhead.py` measures our engine against.

The benchmark's one worker is started with `celery -A bench.baseline_tasks worker`, so the
same worker process (same pool, same settings: prefork, acks_late, prefetch 1) serves the
engine's tasks and these. Importing this module turns on a result backend on the project's
Celery app, on the same Redis as the broker: the baseline's client waits on results
(`chain(...).get()`, `chord(...)`). The engine's tasks are `ignore_result=True`, so they
never touch it; the backend is only ever used by the tasks below.
"""

from django.conf import settings

from datamate.celery import app

app.conf.result_backend = settings.CELERY_BROKER_URL
# The project ignores results by default; the baseline's client needs them.
app.conf.result_expires = 3600


@app.task(name="bench.noop", ignore_result=False)
def noop(previous=None):
    return {"ok": True, "has_input": previous is not None}


@app.task(name="bench.join", ignore_result=False)
def join(results):
    return {"ok": True, "inputs": len(results)}
