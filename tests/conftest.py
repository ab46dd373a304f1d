import pytest
from rest_framework.test import APIClient

from datamate.celery import app as celery_app
from tests.factories import create_user


@pytest.fixture
def alice(db):
    return create_user("alice")


@pytest.fixture
def bob(db):
    return create_user("bob")


@pytest.fixture
def staff(db):
    return create_user("root", staff=True)


@pytest.fixture
def api_client():
    return APIClient()


def api_client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def alice_api(alice):
    return api_client_for(alice)


@pytest.fixture
def bob_api(bob):
    return api_client_for(bob)


@pytest.fixture(autouse=True, scope="session")
def celery_configured_from_real_settings():
    """Celery builds its connection and producer pools at first use and keeps them. Make that
    first use happen here, so a test that overrides CELERY_BROKER_URL (the health check) cannot
    leave the whole session's Celery pointing at its broker."""
    assert celery_app.conf.broker_url
    assert celery_app.pool is not None
    assert celery_app.amqp.producer_pool is not None
