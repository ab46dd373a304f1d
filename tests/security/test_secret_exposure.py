"""A stored secret never comes out: a unique random value is stored through /api/secrets/,
used by real runs (Data Synthesis and Data Annotation calling the test chat server from a
real worker, one endpoint echoing the key back in its errors and replies) and by a node
test, watched over the websocket; then the value is looked for everywhere a user or an
operator can read:

* every GET route the resolver knows (API, pages, exports in every format, the OpenAPI
  schema), as the owner and as staff, and every admin page (every object's change and
  history pages) as a superuser;
* every websocket message of the run;
* every row of every table (only the ciphertext may be stored), every file in storage
  (run artifacts, dataset versions), every Redis value (node-test results), every log line
  (node run logs in the database, this process's log records, every worker's log file).

The chat server received the key (the secret was really used), so a miss cannot come from
a run that never read it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
import json
import logging
from pathlib import Path
import re
import secrets as random_secrets
import time

from asgiref.sync import async_to_sync
from django.apps import apps
from django.conf import settings
from django.test import Client

from nodes import saved_tasks
from nodes.models import Secret
from pipelines import schedules, services
from pipelines.engine import events
from pipelines.engine.runs import start_run
from pipelines.engine.states import RunState
from pipelines.models import NodeRunLog, Run
from tests.chat_server import ChatServer
from tests.engine.conftest import make_dataset, node, wait_for_run
from tests.engine.test_live import RECEIVE_TIMEOUT, communicator, session_cookie
from tests.factories import edge
from tests.security.test_authorization import (
    World,
    build_path,
    classify,
    http_routes,
    quiet_request_log,
    send,
)

TEXTS = ["Adding fractions: 1/2 + 1/4 = 3/4.", "The weather in the mountains changes quickly."]


def answer(prompt: str, body: dict) -> str:
    """JSON that both the synthesis (question, answer) and the annotation (label) accept."""
    return json.dumps({"question": f"Q: {prompt[:40]}", "answer": "42", "label": "math", "score": 0.5})


def llm_document(name: str, base_url: str, **extra) -> dict:
    model = {"model": "tiny-chat", "base_url": base_url, "api_key_secret": "llm", "backoff_seconds": 0.01, **extra}
    return {
        "name": name,
        "nodes": [
            node("read", "input_dataset", dataset="notes"),
            node("quiz", "data_synthesis", prompt_template="Ask about {{ record.text }}", **model),
            node("label", "data_annotation", method="model", labels=["math", "other"], **model),
            node("write", "output_dataset", dataset=f"{name}-out"),
        ],
        "edges": [edge("read", "quiz"), edge("quiz", "label"), edge("label", "write")],
    }


def watch(run_id: int, cookie: str) -> list[str]:
    """Every websocket message of the run, from the snapshot until it has finished."""

    async def scenario():
        client = communicator(run_id, cookie)
        connected, _ = await client.connect(timeout=RECEIVE_TIMEOUT)
        assert connected
        messages = []
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                message = await client.receive_json_from(timeout=RECEIVE_TIMEOUT)
                messages.append(json.dumps(message))
                run = message.get("run") or message.get("event", {}).get("run") or {}
                if run.get("state") in RunState.FINISHED:
                    break
        finally:
            await client.disconnect()
        return messages

    return async_to_sync(scenario)()


def body_of(client: Client, path: str) -> tuple[int, bytes]:
    response = send(client, "GET", path, {}, as_json=True)
    return response.status_code, response._body


def every_get_path(world: World, *, admin: bool) -> list[str]:
    """Every GET route filled with the objects of `world`, the exports in every format, and
    (for the admin) the change and history pages of every object."""
    paths = []
    for route in http_routes():
        kind = classify(route)
        if kind is None or route.is_admin != admin or route.name.endswith("logout"):
            continue
        model_route = re.match(r"admin/(\w+)/(\w+)/<path:object_id>", route.pattern)
        if model_route:
            model = apps.get_model(model_route[1], model_route[2])
            for pk in model._default_manager.order_by("pk").values_list("pk", flat=True)[:50]:
                paths.append(build_path(route, replace_admin_object(world, model, pk)))
            continue
        paths.append(build_path(route, world))
    paths += [
        f"/api/datasets/{world.dataset.pk}/versions/1/export/?format={fmt}"
        for fmt in ("jsonl", "csv", "parquet", "label_studio")
    ]
    paths += [
        f"/api/pipelines/{world.pipeline.pk}/export/?version=1",
        f"/api/runs/{world.run.pk}/logs/?tail=5000",
        f"/api/runs/?pipeline={world.pipeline.pk}",
        f"/api/pipelines/{world.pipeline.pk}/versions/1/diff/?against=1",
        "/api/schema/?format=json",
    ]
    return paths


def replace_admin_object(world: World, model, pk) -> World:
    return replace(world, admin_objects={**world.admin_objects, model._meta.label_lower: model(pk=pk)})


def test_a_stored_secret_appears_in_no_response_log_export_or_stream(
    engine,
    engine_logs,
    alice,
    bob,
    staff,
    caplog,
    tmp_path_factory,
):
    value = f"sk-{random_secrets.token_urlsafe(24)}"
    needle = value.encode()
    caplog.set_level(logging.DEBUG)
    alice_client = Client()
    alice_client.force_login(alice)
    created = alice_client.post(
        "/api/secrets/", {"name": "llm", "value": value, "description": "model key"}, content_type="application/json"
    )
    assert created.status_code == 201 and needle not in created.content
    secret = Secret.objects.get(owner=alice, name="llm")
    make_dataset(alice, "notes", [{"id": n, "text": text} for n, text in enumerate(TEXTS, 1)])

    with ChatServer() as server, ChatServer() as echo:
        server.answer = answer
        # An endpoint that echoes the key back: in the errors of its refusals and in a reply.
        echo.fail_first, echo.fail_status, echo.fail_message = 1000, 401, f"Incorrect API key provided: {value}"
        good = services.import_pipeline(owner=alice, document=llm_document("good", server.base_url))
        bad = services.import_pipeline(owner=alice, document=llm_document("bad", echo.base_url))
        cookie = session_cookie(alice)
        started = alice_client.post(f"/api/pipelines/{good.pk}/runs/", {}, content_type="application/json")
        assert started.status_code == 201
        run = Run.objects.get(pk=started.json()["id"])
        stream = watch(run.pk, cookie)
        run = wait_for_run(run, timeout=90)
        assert run.state == RunState.SUCCEEDED, run.error
        bad_run = Run.objects.get(
            pk=alice_client.post(f"/api/pipelines/{bad.pk}/runs/", {}, content_type="application/json").json()["id"]
        )
        stream += watch(bad_run.pk, cookie)
        bad_run = wait_for_run(bad_run, timeout=90)
        assert bad_run.state == RunState.FAILED
        assert "refused the key" in bad_run.error
        # A reply that quotes the key, where JSON was asked for: a failure sample of a run
        # that succeeds (one reply in two is fine).
        echo.fail_first = 0
        echo.answer = lambda prompt, body: f"Sure! I was called with {value}" if prompt == "a" else answer(prompt, body)
        quiz = node(
            "quiz",
            "data_synthesis",
            model="tiny-chat",
            base_url=echo.base_url,
            api_key_secret="llm",
            backoff_seconds=0.01,
            seeds=["a", "b"],
            prompt_template="{{ seed }}",
            json_fields=["question"],
            max_failure_rate=0.5,
        )
        sample = services.import_pipeline(owner=alice, document={"name": "sample", "nodes": [quiz]})
        sample_run = wait_for_run(start_run(sample, user=alice), timeout=90)
        assert sample_run.state == RunState.SUCCEEDED, sample_run.error
        (failed_reply,) = sample_run.node_runs.get(node_key="quiz").output["failure_samples"]["invalid_json"]
        assert failed_reply["reply"] == "Sure! I was called with ***"
        # A node test of the synthesis node, through the API.
        tested = alice_client.post(
            f"/api/pipelines/{good.pk}/nodes/quiz/test/",
            {"timeout": 60},
            content_type="application/json",
        )
        assert tested.status_code in (200, 202), tested.content
        node_test_id = tested.json().get("request_id") or random_secrets.token_hex(16)
        # The key reached both endpoints: the secret was really used.
        assert f"Bearer {value}" in server.authorizations
        assert f"Bearer {value}" in echo.authorizations
    events.flush()

    # The objects every route is filled with: the good run and its pipeline, the output dataset.
    out = good.owner.datasets.get(name="good-out")
    world = World(
        mark=value,
        alice=alice,
        bob=bob,
        pipeline=good,
        run=run,
        dataset=out,
        schedule=schedules.create_schedule(good, cron="0 3 * * *"),
        secret=secret,
        saved_task=saved_tasks.create_saved_task(
            owner=alice, kind="cleaning", name="task", config={"operators": [{"name": "exact_dedup"}]}
        ),
        template=services.save_as_template(good, owner=alice, name="llm template"),
        node_test_id=node_test_id,
        secret_value=value,
        admin_objects={model._meta.label_lower: model._default_manager.first() for model in apps.get_models()},
    )
    leaks: list[str] = []
    tried: Counter[str] = Counter()
    staff_client = Client()
    staff_client.force_login(staff)
    with quiet_request_log():
        for who, client, admin in (
            ("alice", alice_client, False),
            ("staff", staff_client, False),
            ("staff", staff_client, True),
        ):
            for path in every_get_path(world, admin=admin):
                status, body = body_of(client, path)
                tried[f"{who}{' admin' if admin else ''}"] += 1
                if needle in body:
                    leaks.append(f"{who} GET {path} ({status})")
                if status >= 500 and not path.startswith("/healthz"):
                    leaks.append(f"{who} GET {path}: {status}")
    leaks += [f"websocket message {m[:200]}" for m in stream if value in m]
    # Logs: node run logs, this process's log records, the workers' log files.
    leaks += [f"node run log {log.pk}" for log in NodeRunLog.objects.filter(message__contains=value)]
    leaks += [f"log record {r.name}: {r.getMessage()[:200]}" for r in caplog.records if value in r.getMessage()]
    # Every process log of the session: a worker started by another test module may have run these.
    process_logs = list(Path(tmp_path_factory.getbasetemp()).rglob("*.log"))
    assert Path(engine_logs) / "worker.log" in process_logs
    leaks += [f"process log {path}" for path in process_logs if needle in path.read_bytes()]
    # Storage, database, Redis.
    leaks += [
        f"file {path}"
        for path in Path(settings.MEDIA_ROOT).rglob("*")
        if path.is_file() and needle in path.read_bytes()
    ]
    for model in apps.get_models():
        for row in model._default_manager.all().values():
            if value in json.dumps(row, default=str):
                leaks.append(f"table {model._meta.db_table} row {row.get('id')}")
    redis = events.redis_client()
    for key in redis.scan_iter(count=1000):
        if redis.type(key) == b"string" and needle in (redis.get(key) or b""):
            leaks.append(f"redis {key!r}")
    assert not leaks, "the secret came out:\n" + "\n".join(leaks)
    print(f"\nsecret exposure: GET requests {dict(tried)}, websocket messages {len(stream)}, leaks 0")
