"""Server-rendered pages: the pipeline list, a pipeline's runs, and the live run page.

Thin views: access goes through `services.visible_pipelines`, payloads through the same
builders the websocket uses, so the first paint and the live updates show the same thing.
"""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, OuterRef, Q, Subquery
from django.shortcuts import get_object_or_404, render
from django.utils.dateparse import parse_datetime

from pipelines import services
from pipelines.engine import events
from pipelines.engine.states import NodeState
from pipelines.models import Run

RUNS_PER_PAGE = 50


def _duration(started, finished) -> str:
    """Like "0.4 s", "12.3 s", "3 m 04 s", "2 h 05 m" (the format static/js/run.js uses)."""
    if not (started and finished):
        return ""
    seconds = max(0.0, (finished - started).total_seconds())
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} m"


@login_required
def pipeline_list(request):
    last_run = Run.objects.filter(pipeline=OuterRef("pk")).order_by("-id")
    pipelines = services.visible_pipelines(request.user).annotate(
        last_run_id=Subquery(last_run.values("id")[:1]),
        last_run_state=Subquery(last_run.values("state")[:1]),
        last_run_created=Subquery(last_run.values("created_at")[:1]),
        run_count=Count("runs"),
    )
    return render(request, "pipelines/pipeline_list.html", {"pipelines": pipelines})


@login_required
def run_list(request, pipeline_id: int):
    pipeline = get_object_or_404(services.visible_pipelines(request.user), pk=pipeline_id)
    runs = (
        Run.objects.filter(pipeline=pipeline)
        .select_related("created_by")
        .annotate(
            nodes_total=Count("node_runs"),
            nodes_finished=Count("node_runs", filter=Q(node_runs__state__in=NodeState.FINISHED)),
        )
        .order_by("-id")
    )
    page = Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    for run in page:
        run.duration_text = _duration(run.started_at, run.finished_at)
    return render(request, "pipelines/run_list.html", {"pipeline": pipeline, "page": page, "runs": page.object_list})


@login_required
def run_detail(request, run_id: int):
    run = get_object_or_404(
        Run.objects.select_related("pipeline", "created_by", "parent_node_run", "rerun_of").filter(
            pipeline__in=services.visible_pipelines(request.user)
        ),
        pk=run_id,
    )
    state = events.run_state(run)
    rows = [
        {
            **payload,
            "duration_text": _duration(*(parse_datetime(payload[f] or "") for f in ("started_at", "finished_at"))),
            "percent": round(100 * (payload["progress"] or 0)),
        }
        for payload in state["node_runs"]
    ]
    context = {
        "run": run,
        "pipeline": run.pipeline,
        "duration_text": _duration(run.started_at, run.finished_at),
        "node_runs": rows,
        "logs": state["logs"],
        "params_json": json.dumps(run.params, indent=2, sort_keys=True, ensure_ascii=False),
        "child_runs": Run.objects.filter(
            parent_node_run__run=run, pipeline__in=services.visible_pipelines(request.user)
        ).select_related("pipeline", "parent_node_run"),
        "live": {"run": run.pk, "ws": f"/ws/runs/{run.pk}/"},
    }
    return render(request, "pipelines/run_detail.html", context)
