"""The designer page (the React bundle in static/designer/, built from frontend/) and the
"New pipeline" button that opens it on an empty pipeline.

The page only hands the bundle what it cannot fetch itself: the pipeline id, the URLs of
the API and the websocket, the CSRF token, and the JSON Schemas of the document's parts
that are not node types (parameters, execution settings). Everything else goes through
the REST API, like any other client.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from nodes.registry import SETTINGS_SCHEMA
from pipelines import documents, services

BUNDLE_FILES = ("designer/designer.js", "designer/designer.css")
NEW_PIPELINE_NAME = "Untitled pipeline"


@functools.lru_cache(maxsize=8)
def _digest(path: str, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def bundle_version() -> str:
    """Changes whenever the bundle does, so browsers never run a cached older one (its file
    names carry no hash: they are committed and included by name)."""
    parts = []
    for name in BUNDLE_FILES:
        path = finders.find(name)
        parts.append(_digest(path, Path(path).stat().st_mtime_ns) if path else "missing")
    return "-".join(parts)


def _run_url(name: str) -> str:
    """A URL pattern with `{id}` where the run id goes; the bundle fills it in."""
    return reverse(name, args=[0]).replace("/0/", "/{id}/")


@login_required
def designer(request, pipeline_id: int):
    pipeline = get_object_or_404(services.visible_pipelines(request.user), pk=pipeline_id)
    config = {
        "pipeline": pipeline.pk,
        "csrfToken": get_token(request),
        "urls": {
            "graph": reverse("pipeline-graph", args=[pipeline.pk]),
            "runs": reverse("pipeline-run-list", args=[pipeline.pk]),
            "nodeTypes": reverse("node-type-list"),
            "runPage": _run_url("pages:run-detail"),
            "runSocket": "/ws/runs/{id}/",
        },
        "parameterSchema": documents.DOCUMENT_SCHEMA["properties"]["parameters"],
        "settingsSchema": SETTINGS_SCHEMA,
    }
    context = {"pipeline": pipeline, "config": config, "bundle_version": bundle_version()}
    return render(request, "pipelines/designer.html", context)


@login_required
@require_POST
def new_pipeline(request):
    pipeline = services.create_pipeline(owner=request.user, name=NEW_PIPELINE_NAME)
    return redirect("pages:designer", pipeline.pk)
