"""Stored secrets: encrypted at rest, owner-scoped, and the value never comes back out."""

import logging

from django.test import Client
import pytest

from nodes import secrets
from nodes.models import Secret

pytestmark = pytest.mark.django_db

VALUE = "sk-live-4f9a7c1e2b3d"


@pytest.fixture
def stored(alice):
    return secrets.create_secret(owner=alice, name="openai", value=VALUE, description="team key")


def test_the_value_is_stored_encrypted_and_revealed_only_for_its_owner(alice, bob, stored):
    row = Secret.objects.get(pk=stored.pk)
    assert VALUE not in row.ciphertext
    assert secrets.reveal(alice.pk, "openai") == VALUE
    with pytest.raises(secrets.SecretNotFound, match="you have no secret named 'openai'"):
        secrets.reveal(bob.pk, "openai")


def test_the_key_comes_from_datamate_secrets_key_else_secret_key(alice, settings):
    settings.DATAMATE_SECRETS_KEY = ""
    secrets.create_secret(owner=alice, name="a", value=VALUE)
    settings.SECRET_KEY = "another-secret-key-for-this-test"
    with pytest.raises(secrets.SecretUnreadable) as unreadable:
        secrets.reveal(alice.pk, "a")
    assert "set it again" in str(unreadable.value) and VALUE not in str(unreadable.value)

    settings.DATAMATE_SECRETS_KEY = "a-dedicated-secrets-key"
    secrets.create_secret(owner=alice, name="b", value=VALUE)
    settings.SECRET_KEY = "yet-another-secret-key"  # no longer used for secrets
    assert secrets.reveal(alice.pk, "b") == VALUE


@pytest.mark.parametrize(
    ("name", "value", "field"), [("", "v", "name"), ("has space", "v", "name"), ("ok", "", "value")]
)
def test_bad_input_names_the_field(alice, name, value, field):
    with pytest.raises(secrets.SecretError) as error:
        secrets.create_secret(owner=alice, name=name, value=value)
    assert error.value.field == field


# --- API ------------------------------------------------------------------------------


def test_the_api_never_returns_the_value(alice_api, caplog):
    caplog.set_level(logging.DEBUG)
    answers = []
    created = alice_api.post("/api/secrets/", {"name": "openai", "value": VALUE, "description": "d"}, format="json")
    answers.append(created)
    assert created.status_code == 201
    assert set(created.json()) == {"id", "name", "description", "created_at", "updated_at"}
    pk = created.json()["id"]
    answers.append(alice_api.get("/api/secrets/"))
    answers.append(alice_api.get(f"/api/secrets/{pk}/"))
    answers.append(alice_api.patch(f"/api/secrets/{pk}/", {"description": "changed"}, format="json"))
    answers.append(alice_api.post("/api/secrets/", {"name": "openai", "value": VALUE}, format="json"))
    answers.append(alice_api.post("/api/secrets/", {"name": "bad name", "value": VALUE}, format="json"))
    answers.append(alice_api.get("/api/schema/", {"format": "json"}))
    for answer in answers:
        assert VALUE.encode() not in answer.content
        assert b"ciphertext" not in answer.content
    assert VALUE not in caplog.text
    assert alice_api.get("/api/secrets/").json()["results"][0]["description"] == "changed"
    assert secrets.reveal(Secret.objects.get(pk=pk).owner_id, "openai") == VALUE


def test_the_api_changes_the_value_only_when_one_is_sent(alice, alice_api, stored):
    response = alice_api.patch(f"/api/secrets/{stored.pk}/", {"name": "renamed"}, format="json")
    assert response.status_code == 200 and response.json()["name"] == "renamed"
    assert secrets.reveal(alice.pk, "renamed") == VALUE
    response = alice_api.put(f"/api/secrets/{stored.pk}/", {"name": "renamed", "value": "sk-new"}, format="json")
    assert response.status_code == 200
    assert secrets.reveal(alice.pk, "renamed") == "sk-new"


def test_api_errors_name_the_field(alice_api, stored):
    taken = alice_api.post("/api/secrets/", {"name": "openai", "value": "x"}, format="json")
    assert taken.status_code == 400
    assert taken.json() == {"errors": [{"field": "name", "message": "you already have a secret named 'openai'"}]}
    missing = alice_api.post("/api/secrets/", {"name": "other"}, format="json")
    assert missing.status_code == 400 and missing.json()["errors"][0]["field"] == "value"
    bad = alice_api.post("/api/secrets/", {"name": "a b", "value": "x"}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "name"
    assert Secret.objects.count() == 1


def test_another_users_secret_is_not_found(bob_api, stored):
    assert bob_api.get("/api/secrets/").json()["results"] == []
    for method, body in (("get", None), ("patch", {"value": "stolen"}), ("delete", None)):
        response = getattr(bob_api, method)(f"/api/secrets/{stored.pk}/", body, format="json")
        assert response.status_code == 404
    assert secrets.reveal(stored.owner_id, "openai") == VALUE


def test_delete(alice_api, stored):
    assert alice_api.delete(f"/api/secrets/{stored.pk}/").status_code == 204
    assert not Secret.objects.exists()


def test_anonymous_is_refused(api_client):
    assert api_client.get("/api/secrets/").status_code == 401


# --- admin ----------------------------------------------------------------------------


@pytest.fixture
def admin_client(staff):
    client = Client()
    client.force_login(staff)
    return client


def test_the_admin_encrypts_what_is_typed_and_never_shows_it(admin_client, alice):
    form = {"owner": alice.pk, "name": "from-admin", "description": "", "value": VALUE}
    response = admin_client.post("/admin/nodes/secret/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    secret = Secret.objects.get(name="from-admin")
    assert secrets.reveal(alice.pk, "from-admin") == VALUE

    page = admin_client.get(f"/admin/nodes/secret/{secret.pk}/change/")
    assert page.status_code == 200
    assert VALUE.encode() not in page.content and secret.ciphertext.encode() not in page.content
    assert b'type="password"' in page.content

    # An empty value keeps the stored one.
    form = {"owner": alice.pk, "name": "from-admin", "description": "now described", "value": ""}
    assert admin_client.post(f"/admin/nodes/secret/{secret.pk}/change/", form).status_code == 302
    assert secrets.reveal(alice.pk, "from-admin") == VALUE
    assert VALUE.encode() not in admin_client.get("/admin/nodes/secret/").content


def test_the_admin_requires_a_value_for_a_new_secret(admin_client, alice):
    response = admin_client.post("/admin/nodes/secret/add/", {"owner": alice.pk, "name": "x", "value": ""})
    assert response.status_code == 200
    assert b"A new secret needs a value." in response.content
    assert not Secret.objects.exists()
