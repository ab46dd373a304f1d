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

from nodes import registry
from pipelines import schedules, services
from pipelines.engine import events, runs
from pipelines.engine.states import NodeState, RunState
from pipelines.graph_validation import GraphInvalid
from pipelines.models import Run, Schedule

RUNS_PER_PAGE = 50
#: A node card's size on the designer's canvas (designer.css), in canvas units.
PREVIEW_NODE_SIZE = (220, 90)
#: Room around a Loop's children, and around the whole preview.
PREVIEW_PADDING = 40
PREVIEW_LABEL_CHARS = 22


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


def graph_preview(document: dict) -> dict | None:
    """What the gallery's SVG of a graph draws: a box per node where the designer puts it
    (a Loop's children are placed relative to the Loop, which grows to hold them), and a
    curve per edge. None for a graph without nodes."""
    nodes = document.get("nodes") or []
    if not nodes:
        return None
    by_key = {node["key"]: node for node in nodes}
    width, height = PREVIEW_NODE_SIZE

    def ancestors(node: dict) -> list[dict]:
        chain, seen = [], {node["key"]}
        while (parent := by_key.get(node.get("parent") or "")) and parent["key"] not in seen:
            chain.append(parent)
            seen.add(parent["key"])
            node = parent
        return chain

    boxes = {}
    for node in nodes:
        x = y = 0.0
        for part in [node, *ancestors(node)]:
            position = part.get("position") or {}
            x, y = x + float(position.get("x", 0)), y + float(position.get("y", 0))
        try:
            category = registry.get(node["type"]).category
        except registry.UnknownNodeType:
            category = "unknown"
        label = node.get("label") or node["key"]
        if len(label) > PREVIEW_LABEL_CHARS:
            label = label[: PREVIEW_LABEL_CHARS - 1] + "…"
        boxes[node["key"]] = {
            "key": node["key"],
            "type": node["type"],
            "label": label,
            "category": category,
            "x": x,
            "y": y,
            "width": width,
            "height": height,
            "container": False,
        }
    # Deepest children first, so a Loop inside a Loop has grown before its parent grows.
    for node in sorted(nodes, key=lambda n: -len(ancestors(n))):
        parent = node.get("parent")
        if parent in boxes:
            child, box = boxes[node["key"]], boxes[parent]
            right = max(box["x"] + box["width"], child["x"] + child["width"] + PREVIEW_PADDING)
            bottom = max(box["y"] + box["height"], child["y"] + child["height"] + PREVIEW_PADDING)
            box["width"], box["height"], box["container"] = right - box["x"], bottom - box["y"], True

    edges = []
    for edge in document.get("edges") or []:
        source, target = boxes.get(edge["source"]), boxes.get(edge["target"])
        if source and target:
            x1, y1 = source["x"] + source["width"], source["y"] + height / 2
            x2, y2 = target["x"], target["y"] + height / 2
            bend = max(40.0, abs(x2 - x1) / 2)
            edges.append(f"M{x1:g} {y1:g} C{x1 + bend:g} {y1:g} {x2 - bend:g} {y2:g} {x2:g} {y2:g}")

    left = min(box["x"] for box in boxes.values()) - PREVIEW_PADDING
    top = min(box["y"] for box in boxes.values()) - PREVIEW_PADDING
    right = max(box["x"] + box["width"] for box in boxes.values()) + PREVIEW_PADDING
    bottom = max(box["y"] + box["height"] for box in boxes.values()) + PREVIEW_PADDING
    return {
        "view_box": f"{left:g} {top:g} {right - left:g} {bottom - top:g}",
        "containers": [box for box in boxes.values() if box["container"]],
        "nodes": [box for box in boxes.values() if not box["container"]],
        "edges": edges,
    }


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
