"""The authorization matrix: every HTTP route the URL resolver knows (includes walked, admin
too) and every websocket route, tried with every method by a second ordinary user (Bob),
by an anonymous client and, in the admin, by staff without permissions, against objects of
Alice: a pipeline with versions, a run with node runs and log lines, a dataset with a
version, a schedule, a secret, a saved task, a template, a pending node test, an API token.

What must hold:

* a route that names one of Alice's objects answers Bob 403, 404 or 405, exactly what it
  answers for an id that does not exist (no existence oracle);
* no answer to Bob (lists included) holds anything of Alice's (every object of hers carries
  a unique marker string), and no list holds one of her ids;
* no request of Bob, anonymous or staff without permissions changes anything of Alice's
  (every row of hers is compared before and after each route);
* anonymous clients get 401/403 from the API and a redirect to a login page elsewhere,
  except the public routes (login, health, schema);
* the admin sends users who are not staff to its login page, and refuses staff without
  model permissions (403) on every model view;
* the websocket of a run is closed for Bob (4403, as for a run that does not exist) and for
  anonymous clients (4401).

A route missing from the tables below fails the test, so a new endpoint cannot escape it.
Alice (the owner) reads each of her routes too: the matrix would fail if it aimed at the
wrong objects. The figures: `pytest tests/security/test_authorization.py -s` prints them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
import contextlib
from dataclasses import dataclass
import json
import logging
import re
import secrets as random_secrets
import time
from typing import Any

from asgiref.sync import async_to_sync
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q
from django.test import Client
from django.urls import URLResolver, get_resolver, resolve
from django_celery_beat.models import PeriodicTask
import pytest
from rest_framework.authtoken.models import Token

from datasets import services as dataset_services
from datasets.models import Dataset, DatasetVersion
from nodes import saved_tasks, secrets
from nodes.models import SavedTask, Secret
from pipelines import schedules, services
from pipelines.engine import events, node_test
from pipelines.engine.runs import start_run
from pipelines.engine.runtime import write_log
from pipelines.models import Edge, Node, NodeRun, NodeRunLog, Pipeline, PipelineVersion, Run, Schedule, Template
from pipelines.routing import websocket_urlpatterns
from tests.engine.conftest import make_dataset
from tests.engine.test_live import communicator, refused_with, session_cookie
from tests.factories import create_pipeline, linear_document

METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
WRITES = ("POST", "PUT", "PATCH", "DELETE")
#: Django's admin views tell only POST from the rest (which they answer like GET): the
#: second user tries every method there, anonymous clients and staff without permissions these.
ADMIN_METHODS = ("GET", "POST")
#: An id no object has: Bob must get the same answer for it as for Alice's.
MISSING_ID = 987654321
MISSING_NODE_TEST = "0" * 32

# --- the route tables ---------------------------------------------------------------
# Every non-admin route, by (namespaced) name; the admin's routes are all checked by the
# admin rules. A route in none of these fails `test_every_route_is_in_the_matrix`.

#: Anyone may use these (anonymous included); they hold no user data.
PUBLIC = {
    "",  # the root: a redirect to the pipeline list (which asks for a login)
    "healthz",
    "login",
    "logout",
    "api-token",
    "api-schema",
    "api-docs",
    "rest_framework:login",
    "rest_framework:logout",
}
#: The same for every logged-in user: catalogues and tools, no user data.
CATALOGUE = {
    "api-root",
    "node-type-list",
    "node-type-detail",
    "node-type-handles",
    "operator-list",
    "operator-detail",
    "schedule-preview",
}
#: The user's own objects (lists, create): Bob's answers hold none of Alice's. The model
#: is what a list's `results` hold (their ids must not be Alice's).
COLLECTIONS = {
    "pipeline-list": Pipeline,
    "pipeline-import-": Pipeline,
    "template-list": Template,
    "run-list": Run,
    "dataset-list": Dataset,
    "saved-task-list": SavedTask,
    "secret-list": Secret,
    "pages:pipeline-list": None,
    "pages:pipeline-new": None,
    "pages:template-list": None,
    "dataset_pages:dataset-list": None,
}
#: Routes that name one of Alice's objects: Bob gets 403/404/405, as for a missing id.
OBJECT_ROUTES = {
    "pipeline-detail",
    "pipeline-diff",
    "pipeline-export",
    "pipeline-graph",
    "pipeline-restore",
    "pipeline-validate",
    "pipeline-version",
    "pipeline-versions",
    "template-detail",
    "template-instantiate",
    "run-detail",
    "run-cancel",
    "run-logs",
    "run-rerun",
    "pipeline-run-list",
    "pipeline-node-test",
    "node-test-detail",
    "pipeline-schedule-list",
    "pipeline-schedule-detail",
    "dataset-detail",
    "dataset-version-list",
    "dataset-version-detail",
    "dataset-version-export",
    "dataset-version-records",
    "dataset-version-stats",
    "saved-task-detail",
    "secret-detail",
    "pages:designer",
    "pages:run-list",
    "pages:run-start",
    "pages:run-detail",
    "pages:run-cancel",
    "pages:run-rerun",
    "pages:template-use",
    "pages:template-delete",
    "dataset_pages:dataset-detail",
}
#: Alice reads her own object routes with GET: 200, except these.
OWNER_GET_STATUS = {"node-test-detail": 202}  # the test is still pending (no worker in this test)
#: Admin routes that are not a model's views.
ADMIN_SITE_VIEWS = {
    "admin:index",
    "admin:login",
    "admin:logout",
    "admin:password_change",
    "admin:password_change_done",
    "admin:autocomplete",
    "admin:jsi18n",
    "admin:view_on_site",
    "admin:app_list",
    "admin",  # the catch-all (no name)
}


@dataclass(frozen=True)
class Route:
    pattern: str  # as ResolverMatch.route spells it
    name: str  # namespaced name, or the pattern for a route without one
    callback: Callable

    @property
    def is_admin(self) -> bool:
        return self.pattern.startswith("admin/")

    @property
    def is_api(self) -> bool:
        return self.pattern.startswith("api/") and self.name not in PUBLIC


def http_routes() -> list[Route]:
    """Every URL pattern of the project, includes walked."""

    def walk(patterns, prefix: str, namespace: str) -> Iterator[Route]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
            else:
                full = prefix + str(pattern.pattern)
                name = f"{namespace}{pattern.name}" if pattern.name else namespace.rstrip(":") or full
                yield Route(full, name, pattern.callback)

    return list(walk(get_resolver().url_patterns, "", ""))


def websocket_routes() -> list[str]:
    return [str(pattern.pattern) for pattern in websocket_urlpatterns]


# --- Alice's world ------------------------------------------------------------------


@dataclass
class World:
    mark: str
    alice: Any
    bob: Any
    pipeline: Pipeline
    run: Run
    dataset: Dataset
    schedule: Schedule
    secret: Secret
    saved_task: SavedTask
    template: Template
    node_test_id: str
    secret_value: str
    admin_objects: dict[str, Any]


def build_world(alice, bob) -> World:
    """One of each of Alice's objects, each carrying the marker in its name or text."""
    mark = f"alice{random_secrets.token_hex(6)}"
    document = linear_document(3, name=f"{mark} pipeline")
    document["description"] = f"{mark} description"
    document["parameters"] = [{"name": "topic", "type": "string", "default": f"{mark} topic"}]
    document["nodes"][1]["label"] = f"{mark} label"
    pipeline = create_pipeline(alice, document)
    services.save_graph(pipeline, {**document, "description": f"{mark} v2"}, author=alice, message=f"{mark} v2")
    pipeline.refresh_from_db()
    # A run with its node runs (the engine's start; no worker runs it here), then finished.
    run = start_run(pipeline, {"topic": f"{mark} run"}, user=alice)
    Run.objects.filter(pk=run.pk).update(state="failed", error=f"{mark} failed")
    for node_run in run.node_runs.all():
        NodeRun.objects.filter(pk=node_run.pk).update(state="failed", error=f"{mark} node error")
        write_log(node_run, f"{mark} log line of {node_run.node_key}")
    run.refresh_from_db()
    dataset = make_dataset(alice, f"{mark}-data", [{"id": 1, "text": f"{mark} record"}])
    schedule = schedules.create_schedule(pipeline, cron="0 3 * * *", params={"topic": f"{mark} scheduled"})
    secret_value = f"sk-{random_secrets.token_hex(16)}"
    secret = secrets.create_secret(owner=alice, name=f"{mark}-key", value=secret_value, description=mark)
    saved_task = saved_tasks.create_saved_task(
        owner=alice, kind="cleaning", name=f"{mark} task", config={"operators": [{"name": "exact_dedup"}]}
    )
    template = services.save_as_template(pipeline, owner=alice, name=f"{mark} template", description=mark)
    Token.objects.create(user=alice)
    # A node test of Alice's still waiting for a worker: its request, as run_node_test stores it.
    node_test_id = random_secrets.token_hex(16)
    request = {"pipeline": pipeline.pk, "timeout": 60, "deadline": time.time() + 600, "inputs_from_run": None}
    events.redis_client().set(node_test.request_key(node_test_id), json.dumps(request), ex=900)
    # For admin routes: per model, one object (Alice's wherever the model has an owner).
    admin_objects = {
        model._meta.label_lower: model._default_manager.order_by("pk").first() for model in apps.get_models()
    }
    admin_objects["auth.user"] = alice
    return World(
        mark=mark,
        alice=alice,
        bob=bob,
        pipeline=pipeline,
        run=run,
        dataset=dataset,
        schedule=schedule,
        secret=secret,
        saved_task=saved_task,
        template=template,
        node_test_id=node_test_id,
        secret_value=secret_value,
        admin_objects=admin_objects,
    )


def alice_state(world: World) -> list:
    """Every row of Alice's (and the built-in templates), to compare before and after."""
    alice = world.alice
    schedules_q = Schedule.objects.filter(pipeline__owner=alice)
    owned = [
        (get_user_model(), Q(pk=alice.pk)),
        (Pipeline, Q(owner=alice)),
        (Node, Q(pipeline__owner=alice)),
        (Edge, Q(pipeline__owner=alice)),
        (PipelineVersion, Q(pipeline__owner=alice)),
        (Run, Q(pipeline__owner=alice)),
        (NodeRun, Q(run__pipeline__owner=alice)),
        (NodeRunLog, Q(node_run__run__pipeline__owner=alice)),
        (Schedule, Q(pipeline__owner=alice)),
        (PeriodicTask, Q(pk__in=schedules_q.values("periodic_task"))),
        (Dataset, Q(owner=alice)),
        (DatasetVersion, Q(dataset__owner=alice)),
        (SavedTask, Q(owner=alice)),
        (Secret, Q(owner=alice)),
        (Template, Q(owner=alice) | Q(owner__isnull=True)),
        (Token, Q(user=alice)),
    ]
    state = [(model.__name__, list(model._default_manager.filter(q).order_by("pk").values())) for model, q in owned]
    state.append(("history", Pipeline.history.filter(id__in=Pipeline.objects.filter(owner=alice)).count()))
    return state


# --- URLs ---------------------------------------------------------------------------

#: `pk` names a different object in each resource.
PK_BY_RESOURCE: dict[str, Callable[[World], Any]] = {
    "pipelines": lambda w: w.pipeline.pk,
    "templates": lambda w: w.template.pk,
    "runs": lambda w: w.run.pk,
    "datasets": lambda w: w.dataset.pk,
    "saved-tasks": lambda w: w.saved_task.pk,
    "secrets": lambda w: w.secret.pk,
    "schedules": lambda w: w.schedule.pk,
    "node-tests": lambda w: w.node_test_id,
}
CATALOGUE_KEYS = {"node-types": "data_cleaning", "operators": "exact_dedup"}


def url_values(route: Route, world: World, *, missing: bool = False) -> tuple[dict[str, Any], list[Any]]:
    """The keyword and positional values that fill the route with Alice's objects (or, with
    `missing`, with ids that exist nowhere)."""

    def obj(value):
        return MISSING_ID if missing else value

    values: dict[str, Any] = {
        "pipeline_pk": obj(world.pipeline.pk),
        "pipeline_id": obj(world.pipeline.pk),
        "run_id": obj(world.run.pk),
        "template_id": obj(world.template.pk),
        "dataset_pk": obj(world.dataset.pk),
        "dataset_id": obj(world.dataset.pk),
        "number": 1,
        "key": "clean_1",
        "format": "json",
        "app_label": "pipelines",
        "url": "no-such-page/",
        "id": world.alice.pk,
    }
    resource = re.search(r"([\w-]+)/\(\?P<pk>", route.pattern)
    if resource:
        name = resource[1]
        if name in CATALOGUE_KEYS:
            values["pk"] = CATALOGUE_KEYS[name]
        elif name == "node-tests":
            values["pk"] = MISSING_NODE_TEST if missing else world.node_test_id
        else:
            values["pk"] = obj(PK_BY_RESOURCE[name](world))
    positional: list[Any] = []
    model_route = re.match(r"admin/(\w+)/(\w+)/", route.pattern)
    if model_route and apps.all_models.get(model_route[1], {}).get(model_route[2]):
        target = world.admin_objects.get(f"{model_route[1]}.{model_route[2]}")
        values["object_id"] = target.pk if target is not None else MISSING_ID
        if route.name.endswith("_simple_history"):
            history = target.history.order_by("history_id").first() if target is not None else None
            positional = [values["object_id"], history.history_id if history else MISSING_ID]
    if route.name == "admin:view_on_site":
        values["content_type_id"] = ContentType.objects.get_for_model(Pipeline).pk
        values["object_id"] = world.pipeline.pk
    return values, positional


def build_path(route: Route, world: World, *, missing: bool = False) -> str:
    values, positional = url_values(route, world, missing=missing)
    text = route.pattern.replace("^", "").replace("$", "")
    text = re.sub(r"<drf_format_suffix:format>", ".json", text)
    text = re.sub(r"\(\?P<(\w+)>[^()]*\)", lambda m: str(values[m[1]]), text)
    text = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m[1]]), text)
    rest = iter(positional)
    text = re.sub(r"\([^()?]*\)", lambda m: str(next(rest)), text)
    path = "/" + text.replace("\\.", ".").replace("/?", "/")
    # The path must reach this very route, not a neighbour.
    assert resolve(path).route.replace("^", "") == route.pattern.replace("^", ""), (path, route.pattern)
    return path


# --- requests -----------------------------------------------------------------------


def write_body(world: World) -> dict[str, Any]:
    """What a write sends: a field for every resource, aimed at Alice's objects."""
    return {
        "name": "bob-was-here",
        "description": "bob-was-here",
        "value": "bob-was-here",
        "cron": "*/5 * * * *",
        "params": {},
        "kind": "cleaning",
        "config": {"operators": [{"name": "exact_dedup"}]},
        "pipeline": world.pipeline.pk,
        "nodes": [],
        "edges": [],
        "tags": ["bob"],
        "from_node": "clean_1",
        "owner": world.bob.pk,
    }


def send(client: Client, method: str, path: str, body: dict[str, Any], *, as_json: bool, **extra: Any):
    kwargs: dict[str, Any] = {}
    if method in WRITES:
        if as_json:
            kwargs = {"data": json.dumps(body), "content_type": "application/json"}
        elif method == "POST":
            kwargs = {"data": body}
        else:
            from django.test.client import encode_multipart

            kwargs = {
                "data": encode_multipart("BoUnDaRy", body),
                "content_type": "multipart/form-data; boundary=BoUnDaRy",
            }
    response = getattr(client, method.lower())(path, **kwargs, **extra)
    if response.streaming:
        response._body = b"".join(response.streaming_content)
    else:
        response._body = response.content
    return response


def session_client(user=None) -> Client:
    client = Client()
    client.raise_request_exception = False  # a server error is a 500 answer, as a browser sees it
    if user is not None:
        client.force_login(user)
    return client


class Matrix:
    """Counts what was tried and collects every violation (reported all at once)."""

    def __init__(self, world: World):
        self.world = world
        self.tried: Counter[str] = Counter()
        self.routes: set[str] = set()
        self.failures: list[str] = []
        self.owner_reads = 0  # Alice's reads of her own objects that answered
        self.seconds: Counter[str] = Counter()

    def check(self, condition: bool, message: str) -> None:
        if not condition:
            self.failures.append(message)

    def leaks(self, body: bytes) -> bool:
        return self.world.mark.encode() in body or self.world.secret_value.encode() in body


def relogin(client: Client, user, route: Route) -> None:
    if route.name.endswith("logout") and user is not None:
        client.force_login(user)


def list_ids(body: bytes) -> list[int]:
    try:
        data = json.loads(body)
    except ValueError:
        return []
    items = data.get("results", []) if isinstance(data, dict) else data if isinstance(data, list) else []
    return [item.get("id") for item in items if isinstance(item, dict)]


def classify(route: Route) -> str | None:
    if route.is_admin:
        return "admin"
    for kind, names in (("public", PUBLIC), ("catalogue", CATALOGUE), ("collection", COLLECTIONS)):
        if route.name in names:
            return kind
    return "object" if route.name in OBJECT_ROUTES else None


def is_login_redirect(response, login_path: str) -> bool:
    return response.status_code == 302 and response["Location"].startswith(login_path)


#: Query strings some routes need to get past their own checks to the object.
QUERIES = {"pipeline-diff": "?against=1"}


def run_matrix(world: World, clerk) -> Matrix:
    matrix = Matrix(world)
    routes = [route for route in http_routes() if classify(route)]
    alice_client, bob_client, clerk_client = (
        session_client(world.alice),
        session_client(world.bob),
        session_client(clerk),
    )
    anonymous = session_client()
    body = write_body(world)
    # The owner reads her own objects first (a read may fill a cache: version stats): the
    # matrix aims at real objects only if she gets them.
    for route in routes:
        if classify(route) == "object":
            path = build_path(route, world) + QUERIES.get(route.name, "")
            answer = send(alice_client, "GET", path, body, as_json=route.is_api)
            matrix.tried["alice (owner) reads"] += 1
            # 405: a POST-only route (decided by the method, before any lookup).
            expected = (OWNER_GET_STATUS.get(route.name, 200), 405)
            matrix.check(answer.status_code in expected, f"alice GET {path}: {answer.status_code}")
            matrix.owner_reads += answer.status_code != 405
    baseline = alice_state(world)
    # Reads before writes: Bob's lists are checked before his own writes create anything.
    # Logout routes last in each phase (they end the session; the client logs in again).
    ordered = sorted(routes, key=lambda r: r.name.endswith("logout"))
    for phase in ("read", "write"):
        methods = ("GET", "HEAD", "OPTIONS") if phase == "read" else WRITES
        for route in ordered:
            kind = classify(route)
            started = time.monotonic()
            matrix.routes.add(route.pattern)
            query = QUERIES.get(route.name, "")
            path = build_path(route, world) + query
            as_json = route.is_api
            for method in methods:
                _try_bob(matrix, bob_client, route, kind, method, path, body, as_json)
                if kind == "admin" and method not in ADMIN_METHODS:
                    continue  # Bob tries them all; the admin's views know only GET and POST
                _try_anonymous(matrix, anonymous, route, kind, method, path, body, as_json)
                if kind == "admin":
                    _try_clerk(matrix, clerk_client, clerk, route, method, path, body)
            if phase == "write":
                after = alice_state(world)
                matrix.check(after == baseline, f"writes to {route.pattern} changed Alice's data")
                baseline = after
            matrix.seconds[kind] += time.monotonic() - started
        if phase == "read":
            matrix.check(alice_state(world) == baseline, "reads changed Alice's data")
    return matrix


def _try_bob(matrix, client, route, kind, method, path, body, as_json) -> None:
    world = matrix.world
    answer = send(client, method, path, body, as_json=as_json)
    relogin(client, world.bob, route)
    matrix.tried["bob"] += 1
    where = f"bob {method} {path}"
    # /healthz answers 503 when no worker runs (none does here): by design.
    matrix.check(answer.status_code < 500 or route.name == "healthz", f"{where}: {answer.status_code}")
    matrix.check(not matrix.leaks(answer._body), f"{where}: answer holds Alice's data")
    if kind == "object":
        missing_path = build_path(route, world, missing=True) + QUERIES.get(route.name, "")
        missing = send(client, method, missing_path, body, as_json=as_json)
        matrix.tried["bob, missing id"] += 1
        if method == "OPTIONS":  # DRF describes the route, not the object
            matrix.check(answer._body == missing._body, f"{where}: differs from a missing id")
        else:
            matrix.check(answer.status_code in (403, 404, 405), f"{where}: {answer.status_code}")
        matrix.check(
            answer.status_code == missing.status_code,
            f"{where}: {answer.status_code}, but {missing.status_code} for a missing id",
        )
    elif kind == "collection" and method == "GET" and COLLECTIONS[route.name] is not None:
        model = COLLECTIONS[route.name]
        listed = model._default_manager.filter(pk__in=list_ids(answer._body))
        others = [row.pk for row in listed if _owner_of(row) == world.alice.pk]
        matrix.check(not others, f"{where}: lists Alice's {model.__name__} {others}")
    elif kind == "admin":
        _check_admin_for_non_staff(matrix, route, answer, where)


def _try_anonymous(matrix, client, route, kind, method, path, body, as_json) -> None:
    answer = send(client, method, path, body, as_json=as_json)
    matrix.tried["anonymous"] += 1
    where = f"anonymous {method} {path}"
    matrix.check(answer.status_code < 500 or route.name == "healthz", f"{where}: {answer.status_code}")
    matrix.check(not matrix.leaks(answer._body), f"{where}: answer holds Alice's data")
    if kind == "public":
        return
    if route.is_api:
        matrix.check(answer.status_code in (401, 403), f"{where}: {answer.status_code}")
    elif kind == "admin":
        _check_admin_for_non_staff(matrix, route, answer, where)
    else:
        matrix.check(is_login_redirect(answer, "/accounts/login/"), f"{where}: {answer.status_code}")


def _try_clerk(matrix, client, clerk, route, method, path, body) -> None:
    """Staff without model permissions: refused on every model view of the admin."""
    answer = send(client, method, path, body, as_json=False)
    relogin(client, clerk, route)
    matrix.tried["staff without permissions (admin)"] += 1
    where = f"clerk {method} {path}"
    matrix.check(answer.status_code < 500, f"{where}: {answer.status_code}")
    matrix.check(not matrix.leaks(answer._body), f"{where}: answer holds Alice's data")
    if route.name == "admin:app_list":
        matrix.check(answer.status_code in (404, 405), f"{where}: {answer.status_code}")
    elif route.name not in ADMIN_SITE_VIEWS:
        ok = answer.status_code in (403, 405)
        if not ok and "/987654321/" in path:
            # No object of this model exists: the admin says so (a redirect to its index).
            ok = answer.status_code == 302 and answer["Location"].startswith("/admin/")
        matrix.check(ok, f"{where}: {answer.status_code}")


def _owner_of(row) -> int | None:
    if hasattr(row, "owner_id"):
        return row.owner_id
    return row.pipeline.owner_id  # a run


def _check_admin_for_non_staff(matrix: Matrix, route: Route, answer, where: str) -> None:
    """The admin sends users who are not staff to its login page (its own login page and
    the catch-all, which answers 404 for any unknown path, excepted)."""
    if route.name == "admin:login":
        matrix.check(answer.status_code in (200, 302, 405), f"{where}: {answer.status_code}")
    elif route.name == "admin:logout":  # to the admin's index, which asks for a login
        matrix.check(answer.status_code == 302 and answer["Location"] == "/admin/", f"{where}: {answer.status_code}")
    elif route.name == "admin":
        matrix.check(answer.status_code in (302, 404), f"{where}: {answer.status_code}")
        if answer.status_code == 302:
            matrix.check(answer["Location"].startswith("/admin/login/"), f"{where}: to {answer['Location']}")
    else:
        matrix.check(is_login_redirect(answer, "/admin/login/"), f"{where}: {answer.status_code}")


@contextlib.contextmanager
def quiet_request_log():
    """Thousands of refusals would each log a warning (with its traceback)."""
    loggers = [logging.getLogger(name) for name in ("django.request", "django.security.csrf")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


# --- tests --------------------------------------------------------------------------


@pytest.fixture
def clerk(db):
    """Staff, not superuser, with no model permission."""
    return get_user_model().objects.create_user(username="clerk", password="pw-for-tests-1", is_staff=True)


@pytest.fixture
def world(alice, bob):
    return build_world(alice, bob)


def test_every_route_is_in_the_matrix():
    """A new route must be classified before it can ship (and then the matrix tries it)."""
    unclassified = [route.pattern for route in http_routes() if classify(route) is None]
    assert not unclassified, f"routes missing from the authorization matrix: {unclassified}"
    named = {route.name for route in http_routes()}
    stale = (PUBLIC | CATALOGUE | set(COLLECTIONS) | OBJECT_ROUTES) - named
    assert not stale, f"the matrix names routes that no longer exist: {stale}"
    assert websocket_routes() == ["ws/runs/<int:run_id>/"], "a new websocket route: add it to the websocket test"


def test_second_user_anonymous_and_staff_without_permissions_get_nothing_of_alices(world, clerk, capsys):
    started = time.monotonic()
    with quiet_request_log():
        matrix = run_matrix(world, clerk)
    elapsed = time.monotonic() - started
    assert not matrix.failures, f"{len(matrix.failures)} violations:\n" + "\n".join(matrix.failures[:80])
    total = sum(matrix.tried.values())
    with capsys.disabled():
        print(
            f"\nauthorization matrix: {len(matrix.routes)} routes x {len(METHODS)} methods (admin routes: "
            f"{'/'.join(ADMIN_METHODS)} for anonymous and staff without permissions); "
            f"requests {dict(matrix.tried)} = {total}, violations 0, {elapsed:.1f} s "
            f"({', '.join(f'{kind} {seconds:.1f} s' for kind, seconds in matrix.seconds.items())})"
        )
    # Every route was tried, by every kind of client.
    assert len(matrix.routes) == len([r for r in http_routes() if classify(r)])
    assert matrix.owner_reads > 20


def test_the_matrix_fails_when_a_route_leaks(world, monkeypatch):
    """The matrix is not blind: a view that forgot its owner filter is caught."""
    monkeypatch.setattr(dataset_services, "visible_datasets", lambda user: Dataset.objects.all())
    matrix = Matrix(world)
    route = next(r for r in http_routes() if r.name == "dataset-detail")
    path = build_path(route, world)
    with quiet_request_log():
        _try_bob(matrix, session_client(world.bob), route, "object", "GET", path, {}, True)
    assert f"bob GET {path}: answer holds Alice's data" in matrix.failures
    assert f"bob GET {path}: 200" in matrix.failures


@pytest.mark.django_db(transaction=True)
def test_run_websocket_is_closed_for_another_user_and_anonymous(alice, bob, staff):
    pipeline = create_pipeline(
        alice, {"name": "private", "nodes": [{"key": "only", "type": "test_step", "config": {}}]}
    )
    run = Run.objects.create(pipeline=pipeline, version=pipeline.version, spec={}, state="failed")
    NodeRun.objects.create(run=run, node_key="only", state="failed")
    cookies = {"bob": session_cookie(bob), "alice": session_cookie(alice), "staff": session_cookie(staff)}

    async def opened(run_id: int, cookie: str | None) -> dict:
        client = communicator(run_id, cookie)
        connected, _ = await client.connect(timeout=30)
        assert connected
        try:
            return await client.receive_json_from(timeout=30)
        finally:
            await client.disconnect()

    async def scenario():
        refused = {
            "bob": await refused_with(communicator(run.pk, cookies["bob"])),
            "bob, no such run": await refused_with(communicator(MISSING_ID, cookies["bob"])),
            "anonymous": await refused_with(communicator(run.pk, None)),
            "forged session": await refused_with(communicator(run.pk, "x" * 32)),
        }
        return refused, await opened(run.pk, cookies["alice"]), await opened(run.pk, cookies["staff"])

    refused, alice_snapshot, staff_snapshot = async_to_sync(scenario)()
    assert refused == {"bob": 4403, "bob, no such run": 4403, "anonymous": 4401, "forged session": 4401}
    # The owner and staff (who see every pipeline) get the snapshot.
    assert alice_snapshot["type"] == staff_snapshot["type"] == "snapshot"
    assert alice_snapshot["run"]["id"] == run.pk


def test_admin_history_of_an_edge_whose_nodes_are_gone(staff, alice):
    """The revert page of a past edge answers (it once was a 500: the edge named its nodes)."""
    pipeline = create_pipeline(alice, linear_document(3))
    edge = Edge.objects.filter(pipeline=pipeline).first()
    record = edge.history.order_by("history_id").first()
    services.save_graph(pipeline, {"name": pipeline.name, "nodes": [], "edges": []}, author=alice, message="empty")
    client = session_client(staff)
    for path in (f"/admin/pipelines/edge/{edge.pk}/history/", f"/admin/pipelines/edge/{edge.pk}/history/{record.pk}/"):
        assert client.get(path).status_code in (200, 302), path
