"""CSRF on every route the resolver knows: with session authentication, every unsafe method
without the token is refused (403, a CSRF failure), and with the token it gets past the
check; token authentication (the API's other scheme) needs none. The websocket refuses a
page of another origin (cross-site websocket hijacking).

The routes are enumerated as in test_authorization (nothing hand-picked). Ids point at
nothing (the sweep must not delete the objects it aims at): the CSRF check comes before any
lookup, so a 404 proves the request got past it. A few real writes show the token works.
"""

from __future__ import annotations

import time

from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from datamate.asgi import application
from pipelines.models import Pipeline, Run
from tests.engine.test_live import communicator, session_cookie
from tests.factories import create_pipeline
from tests.security.test_authorization import (
    WRITES,
    build_path,
    build_world,
    classify,
    http_routes,
    quiet_request_log,
    send,
    write_body,
)


def csrf_refused(response) -> bool:
    """Django's CSRF failure page, or DRF's "CSRF Failed" (session authentication). An HTML
    renderer may drop DRF's message: a 403 that the token turns into something else counts
    too (checked by the caller)."""
    body = response._body
    return response.status_code == 403 and (b"CSRF verification failed" in body or b"CSRF Failed" in body)


def logged_in(user) -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True)
    client.raise_request_exception = False
    client.force_login(user)
    client.get("/pipelines/")  # a page with forms sets the CSRF cookie
    return client, client.cookies[settings.CSRF_COOKIE_NAME].value


def test_every_unsafe_method_with_a_session_needs_the_csrf_token(alice, bob, staff, capsys):
    world = build_world(alice, bob)
    routes = sorted((r for r in http_routes() if classify(r)), key=lambda r: r.name.endswith("logout"))
    client, token = logged_in(staff)
    body = write_body(world)
    failures, tried, passed = [], 0, 0
    started = time.monotonic()
    with quiet_request_log():
        for route in routes:
            path = build_path(route, world, missing=True)
            # The admin's views tell only POST from the rest (which they answer like GET).
            for method in ("POST",) if route.is_admin else WRITES:
                without = send(client, method, path, body, as_json=route.is_api)
                with_token = send(client, method, path, body, as_json=route.is_api, HTTP_X_CSRFTOKEN=token)
                tried += 2
                if not (csrf_refused(without) or (without.status_code == 403 and with_token.status_code != 403)):
                    failures.append(f"{method} {path} without the token: {without.status_code}")
                # /healthz answers 503 when no worker runs (none does here): by design.
                if csrf_refused(with_token) or (with_token.status_code >= 500 and route.name != "healthz"):
                    failures.append(f"{method} {path} with the token: {with_token.status_code}")
                passed += 200 <= with_token.status_code < 400
                if route.name.endswith("logout"):  # it did log out: log in again, same token
                    client.force_login(staff)
                    client.cookies[settings.CSRF_COOKIE_NAME] = token
    assert not failures, f"{len(failures)} CSRF failures:\n" + "\n".join(failures[:60])
    with capsys.disabled():
        print(
            f"\ncsrf, session: {len(routes)} routes (admin: POST; others: {len(WRITES)} methods) x (without, with "
            f"the token) = {tried} "
            f"requests; all refused without, none refused with ({passed} succeeded), "
            f"{time.monotonic() - started:.1f} s"
        )
    assert passed > 20  # the token really works: creations, forms, redirects


def test_the_token_makes_real_writes_work_and_its_absence_changes_nothing(alice):
    client, token = logged_in(alice)
    pipeline = create_pipeline(alice, {"name": "mine", "nodes": []})
    url = f"/api/pipelines/{pipeline.pk}/"
    with quiet_request_log():
        assert client.patch(url, {"name": "forged"}, content_type="application/json").status_code == 403
        assert client.post("/pipelines/new/").status_code == 403
        assert Pipeline.objects.get(pk=pipeline.pk).name == "mine"
        assert Pipeline.objects.filter(owner=alice).count() == 1
        headers = {"HTTP_X_CSRFTOKEN": token}
        assert client.patch(url, {"name": "renamed"}, content_type="application/json", **headers).status_code == 200
        assert client.post("/pipelines/new/", {"csrfmiddlewaretoken": token}).status_code == 302
    assert Pipeline.objects.get(pk=pipeline.pk).name == "renamed"
    assert Pipeline.objects.filter(owner=alice).count() == 2


def test_api_token_authentication_needs_no_csrf_token(alice, bob, staff, capsys):
    world = build_world(alice, bob)
    client = APIClient(enforce_csrf_checks=True)
    client.raise_request_exception = False
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff).key}")
    body = write_body(world)
    routes = [r for r in http_routes() if classify(r) and r.is_api]
    failures, tried = [], 0
    with quiet_request_log():
        for route in routes:
            path = build_path(route, world, missing=True)
            for method in WRITES:
                answer = send(client, method, path, body, as_json=True)
                tried += 1
                if answer.status_code in (401, 403) or answer.status_code >= 500:
                    failures.append(f"{method} {path}: {answer.status_code} {answer._body[:200]!r}")
    assert not failures, "\n".join(failures[:60])
    with capsys.disabled():
        print(f"\ncsrf, API token: {len(routes)} API routes x {len(WRITES)} methods = {tried} requests, none refused")


@pytest.mark.django_db(transaction=True)
def test_run_websocket_refuses_another_origin(alice):
    pipeline = create_pipeline(
        alice, {"name": "private", "nodes": [{"key": "only", "type": "test_step", "config": {}}]}
    )
    run = Run.objects.create(pipeline=pipeline, version=pipeline.version, spec={}, state="failed")
    cookie = session_cookie(alice)

    async def scenario():
        headers = [
            (b"origin", b"http://evil.example"),
            (b"host", b"localhost"),
            (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()),
        ]
        foreign = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/", headers=headers)
        foreign_connected, _ = await foreign.connect(timeout=30)
        await foreign.disconnect()
        same = communicator(run.pk, cookie)
        same_connected, _ = await same.connect(timeout=30)
        snapshot = await same.receive_json_from(timeout=30)
        await same.disconnect()
        return foreign_connected, same_connected, snapshot

    foreign_connected, same_connected, snapshot = async_to_sync(scenario)()
    assert not foreign_connected
    assert same_connected and snapshot["type"] == "snapshot"
