"""Celery reads the project's CELERY_* settings (datamate/celery_config.py), and only those."""

from django.conf import settings

from datamate.celery import app


def test_celery_uses_every_celery_setting_of_the_project():
    assert app.conf.broker_url == settings.CELERY_BROKER_URL
    assert app.conf.task_acks_late is True and app.conf.worker_prefetch_multiplier == 1
    assert app.conf.task_ignore_result is True and app.conf.accept_content == ["json"]
    assert app.conf.beat_scheduler == settings.CELERY_BEAT_SCHEDULER
    assert app.conf.beat_schedule == settings.CELERY_BEAT_SCHEDULE
    assert app.conf.timezone == settings.CELERY_TIMEZONE and app.conf.task_serializer == "json"
    # Celery's Django fixup reads this one by its full name.
    assert app.conf.get("CELERY_DB_REUSE_MAX") == settings.CELERY_DB_REUSE_MAX


def test_celery_finds_no_deprecated_setting_name():
    """Else every worker and beat prints a deprecation warning for each (celery/celery#6366)."""
    assert not app.conf.deprecated_settings
    assert app.conf.maybe_warn_deprecated_settings() is not True


def test_celery_configuration_holds_no_other_setting():
    assert app.conf.get("SECRET_KEY") is None
    assert app.conf.get("DATABASES") is None
    assert {
        key for key in app.conf.table(with_defaults=False) if key.isupper() and not key.startswith("CELERY_")
    } == set()
