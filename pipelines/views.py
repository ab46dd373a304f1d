"""Server-rendered pages: the pipeline list, a pipeline's runs, the live run page (with
forms to start, cancel and re-run), and the template gallery.

Thin views: access goes through `services.visible_pipelines`, payloads through the same
builders the websocket uses, so the first paint and the live updates show the same thing;
actions call the same engine functions as the API and the admin.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, OuterRef, Q, Subquery
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from pipelines import schedules, services
from pipelines.engine import events, runs
from pipelines.engine.states import NodeState, RunState
from pipelines.graph_preview import graph_preview
from pipelines.graph_validation import GraphInvalid
from pipelines.models import Run, Schedule

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


def parameter_fields(definitions: list[dict], values: dict) -> list[dict]:
    """What the parameter form shows: one input per definition, holding `values` or the default."""
    fields = []
    for definition in definitions:
        value = values.get(definition["name"], definition.get("default"))
        fields.append({**definition, "value": "" if value is None else value})
    return fields


def read_parameter_form(definitions: list[dict], form) -> tuple[dict, list[dict]]:
    """Parameter values from a submitted form, typed by their definitions. An empty input
    means "use the default"; a value that does not parse is an error naming `params.<name>`."""
    values, errors = {}, []
    for definition in definitions:
        name, kind = definition["name"], definition["type"]
        field = f"param-{name}"
        if kind == "boolean":
            values[name] = form.get(field) == "on"
            continue
        raw = form.get(field, "").strip()
        if raw == "":
            continue
        try:
            values[name] = int(raw) if kind == "integer" else float(raw) if kind == "number" else raw
        except ValueError:
            errors.append(
                {"field": f"params.{name}", "message": f"must be {'an integer' if kind == 'integer' else 'a number'}"}
            )
    return values, errors


def _report(request, errors: list[dict]) -> None:
    for error in errors:
        messages.error(request, f"{error.get('field') or error.get('node')}: {error['message']}")


def _visible_run(request, run_id: int) -> Run:
    return get_object_or_404(
        Run.objects.select_related("pipeline").filter(pipeline__in=services.visible_pipelines(request.user)), pk=run_id
    )


def _next_fires(pipeline_ids: list[int]) -> dict[int, Schedule]:
    """Per pipeline, its enabled schedule that fires soonest, with `next_fire` set."""
    soonest: dict[int, Schedule] = {}
    for schedule in Schedule.objects.filter(pipeline_id__in=pipeline_ids, enabled=True):
        upcoming = schedules.next_runs(schedule, count=1)
        if not upcoming:
            continue
        schedule.next_fire = upcoming[0]
        current = soonest.get(schedule.pipeline_id)
        if current is None or schedule.next_fire < current.next_fire:
            soonest[schedule.pipeline_id] = schedule
    return soonest


@login_required
def pipeline_list(request):
    query = request.GET.get("q", "").strip()
    last_run = Run.objects.filter(pipeline=OuterRef("pk")).order_by("-id")
    pipelines = services.visible_pipelines(request.user)
    if query:
        pipelines = pipelines.filter(Q(name__icontains=query) | Q(description__icontains=query))
    pipelines = list(
        pipelines.annotate(
            last_run_id=Subquery(last_run.values("id")[:1]),
            last_run_state=Subquery(last_run.values("state")[:1]),
            last_run_created=Subquery(last_run.values("created_at")[:1]),
            run_count=Count("runs"),
        )
    )
    next_fires = _next_fires([pipeline.pk for pipeline in pipelines])
    for pipeline in pipelines:
        pipeline.next_schedule = next_fires.get(pipeline.pk)
    return render(request, "pipelines/pipeline_list.html", {"pipelines": pipelines, "query": query})


@login_required
def run_list(request, pipeline_id: int):
    pipeline = get_object_or_404(services.visible_pipelines(request.user), pk=pipeline_id)
    runs = (
        Run.objects.filter(pipeline=pipeline)
        .select_related("created_by", "schedule")
        .annotate(
            nodes_total=Count("node_runs"),
            nodes_finished=Count("node_runs", filter=Q(node_runs__state__in=NodeState.FINISHED)),
        )
        .order_by("-id")
    )
    page = Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    for run in page:
        run.duration_text = _duration(run.started_at, run.finished_at)
    context = {
        "pipeline": pipeline,
        "page": page,
        "runs": page.object_list,
        "parameters": parameter_fields(pipeline.parameters, {}),
    }
    return render(request, "pipelines/run_list.html", context)


@login_required
@require_POST
def start_run(request, pipeline_id: int):
    pipeline = get_object_or_404(services.visible_pipelines(request.user), pk=pipeline_id)
    params, errors = read_parameter_form(pipeline.parameters, request.POST)
    if not errors:
        try:
            run = runs.start_run(pipeline, params, trigger=Run.Trigger.MANUAL, user=request.user)
        except runs.ParamsInvalid as exc:
            errors = exc.errors
        except GraphInvalid as exc:
            errors = [error.as_dict() for error in exc.errors]
        else:
            return redirect("pages:run-detail", run.pk)
    _report(request, errors)
    return redirect("pages:run-list", pipeline.pk)


@login_required
@require_POST
def cancel_run(request, run_id: int):
    run = _visible_run(request, run_id)
    try:
        runs.cancel(run)
    except runs.RunConflict as exc:
        messages.warning(request, str(exc))
    else:
        messages.success(request, f"Run #{run.pk} cancelled.")
    return redirect("pages:run-detail", run.pk)


@login_required
@require_POST
def rerun(request, run_id: int):
    run = _visible_run(request, run_id)
    params, errors = read_parameter_form(run.spec.get("parameters", []), request.POST)
    if not errors:
        try:
            new_run = runs.rerun(run, from_node=request.POST.get("from_node") or None, params=params, user=request.user)
        except runs.ParamsInvalid as exc:
            errors = exc.errors
        except runs.RunConflict as exc:
            errors = [{"field": "run", "message": str(exc)}]
        else:
            return redirect("pages:run-detail", new_run.pk)
    _report(request, errors)
    return redirect("pages:run-detail", run.pk)


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
        "active": run.state in RunState.ACTIVE,
        "cancellable": run.state in RunState.ACTIVE and not run.parent_node_run_id,
        "rerun_nodes": [node["key"] for node in run.spec.get("nodes", []) if not node.get("parent")],
        "failed_nodes": sorted(
            {
                row["node_key"]
                for row in state["node_runs"]
                if row["state"] in NodeState.RERUN_BY_DEFAULT and not row["iteration"]
            }
        ),
        "parameters": parameter_fields(run.spec.get("parameters", []), run.params),
    }
    return render(request, "pipelines/run_detail.html", context)


# --- templates ----------------------------------------------------------------------


@login_required
def template_list(request):
    """The gallery: built-in templates, the user's own, and (for staff) everyone else's."""
    groups = {"built_in": [], "own": [], "others": []}
    for template in services.visible_templates(request.user).select_related("owner"):
        template.preview = graph_preview(template.document)
        template.node_count = len(template.document.get("nodes") or [])
        template.parameter_names = [p["name"] for p in template.document.get("parameters") or []]
        group = "built_in" if template.built_in else "own" if template.owner_id == request.user.pk else "others"
        groups[group].append(template)
    return render(request, "pipelines/template_list.html", {"groups": groups})


@login_required
@require_POST
def use_template(request, template_id: int):
    """Use Template: a new pipeline from the template, opened in the designer."""
    template = get_object_or_404(services.visible_templates(request.user), pk=template_id)
    try:
        pipeline = services.create_from_template(template, owner=request.user)
    except GraphInvalid as exc:
        _report(request, [error.as_dict() for error in exc.errors])
        return redirect("pages:template-list")
    return redirect("pages:designer", pipeline.pk)


@login_required
@require_POST
def delete_template(request, template_id: int):
    """Built-in templates are refused (404): they come back with every migrate anyway."""
    template = get_object_or_404(services.visible_templates(request.user).filter(owner__isnull=False), pk=template_id)
    template.delete()
    messages.success(request, f"Template {template.name} deleted.")
    return redirect("pages:template-list")
