import pytest
from rest_framework.test import APIClient

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


@pytest.fixture
def alice_api(alice):
    client = APIClient()
    client.force_authenticate(alice)
    return client
