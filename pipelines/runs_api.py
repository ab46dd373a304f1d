"""REST API of runs: start, list, inspect, logs, cancel, re-run; and testing one node.

Thin adapters over `pipelines.engine`. Every object is reached through
`services.visible_pipelines(user)`, so runs of pipelines the user may not see answer 404.
ParamsInvalid (naming `params.<name>`, `from_node` or `key`) and GraphInvalid become 400s,
RunConflict a 409, in `datamate.api_errors`.
"""

from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from datamate.api_errors import FIELD_ERRORS, FieldErrorResponses
from pipelines import services
from pipelines.engine import node_test, runs
from pipelines.engine.runs import start_run
from pipelines.engine.states import RunState
from pipelines.models import NodeRun, NodeRunLog, Run
from pipelines.run_serializers import (
    NodeTestPendingSerializer,
    NodeTestRequestSerializer,
    NodeTestResultSerializer,
    RerunSerializer,
    RunDetailSerializer,
    RunLogPageSerializer,
    RunSerializer,
    StartRunSerializer,
)

CONFLICT = OpenApiResponse(description="The run is in a state that does not allow this.")
LOG_PAGE_DEFAULT = 500
LOG_PAGE_MAX = 5000
#: The largest integer SQLite and PostgreSQL store; a larger id cannot name anything.
MAX_ID = 2**63 - 1


def visible_runs(user):
    return Run.objects.filter(pipeline__in=services.visible_pipelines(user).values("pk")).select_related(
        "pipeline", "created_by"
    )


def _int_param(request, name: str, *, minimum: int, maximum: int = MAX_ID, default: int | None = None):
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: ["must be an integer"]}) from None
    if value < minimum or value > maximum:
        bound = f"between {minimum} and {maximum}" if maximum != MAX_ID else f"at least {minimum} (and an id)"
        raise ValidationError({name: [f"must be {bound}"]})
    return value


def _detail(run: Run) -> dict:
    run = (
        Run.objects.select_related("pipeline", "created_by")
        .prefetch_related(Prefetch("node_runs", queryset=NodeRun.objects.order_by("id")))
        .get(pk=run.pk)
    )
    return RunDetailSerializer(run).data


@extend_schema_view(list=extend_schema(summary="Runs of this pipeline, newest first"))
class PipelineRunViewSet(FieldErrorResponses, mixins.ListModelMixin, viewsets.GenericViewSet):
    """`/api/pipelines/{pipeline_pk}/runs/`: list a pipeline's runs and start one."""

    serializer_class = RunSerializer

    def pipeline(self):
        return get_object_or_404(services.visible_pipelines(self.request.user), pk=self.kwargs["pipeline_pk"])

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Run.objects.none()
        return visible_runs(self.request.user).filter(pipeline=self.pipeline())

    @extend_schema(
        summary="Start a run",
        request=StartRunSerializer,
        responses={201: RunDetailSerializer, 400: FIELD_ERRORS},
    )
    def create(self, request, pipeline_pk=None):
        """Start a run of the latest (or the given) version with these parameter values."""
        pipeline = self.pipeline()
        form = StartRunSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        version = form.validated_data.get("version")
        try:
            run = start_run(
                pipeline, form.validated_data["params"], version=version, trigger=Run.Trigger.API, user=request.user
            )
        except services.NotFound:
            raise ValidationError({"version": [f"this pipeline has no version {version}"]}) from None
        return Response(_detail(run), status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(
        summary="Runs of every pipeline you can see, newest first",
        parameters=[
            OpenApiParameter("pipeline", int, description="Only runs of this pipeline."),
            OpenApiParameter("state", str, enum=sorted(RunState.FINISHED | RunState.ACTIVE)),
        ],
    ),
    retrieve=extend_schema(summary="A run with its node runs", responses={200: RunDetailSerializer}),
)
class RunViewSet(FieldErrorResponses, viewsets.ReadOnlyModelViewSet):
    """`/api/runs/`: every visible run; one run with its node runs, logs, cancel, re-run."""

    serializer_class = RunSerializer
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Run.objects.none()
        queryset = visible_runs(self.request.user)
        if self.action == "list":
            pipeline = _int_param(self.request, "pipeline", minimum=1)
            if pipeline is not None:
                queryset = queryset.filter(pipeline_id=pipeline)
            state = self.request.query_params.get("state")
            if state:
                known = sorted(RunState.FINISHED | RunState.ACTIVE)
                if state not in known:
                    raise ValidationError({"state": [f"must be one of {', '.join(known)}"]})
                queryset = queryset.filter(state=state)
        return queryset

    def retrieve(self, request, *args, **kwargs):
        return Response(_detail(self.get_object()))

    @extend_schema(
        summary="Log lines of a run, oldest first",
        parameters=[
            OpenApiParameter("node", str, description="Only this node's lines."),
            OpenApiParameter("iteration", str, description='Only this loop iteration ("" = top level).'),
            OpenApiParameter("after", int, description="Only lines after this log id (the previous next_after)."),
            OpenApiParameter("tail", int, description="Only the last n lines."),
            OpenApiParameter("limit", int, description=f"Lines per page (default {LOG_PAGE_DEFAULT})."),
        ],
        responses={200: RunLogPageSerializer, 400: FIELD_ERRORS},
    )
    @action(detail=True, methods=["get"])
    def logs(self, request, pk=None):
        """Pages of log lines: follow with `after=<next_after>` while `has_more`; `tail=n` gives the last n."""
        run = self.get_object()
        after = _int_param(request, "after", minimum=0)
        tail = _int_param(request, "tail", minimum=1, maximum=LOG_PAGE_MAX)
        limit = _int_param(request, "limit", minimum=1, maximum=LOG_PAGE_MAX, default=LOG_PAGE_DEFAULT)
        lines = NodeRunLog.objects.filter(node_run__run=run).select_related("node_run")
        node = request.query_params.get("node")
        if node:
            if node not in {n["key"] for n in run.spec.get("nodes", [])}:
                raise ValidationError({"node": [f"the run has no node {node!r}"]})
            lines = lines.filter(node_run__node_key=node)
        if "iteration" in request.query_params:
            lines = lines.filter(node_run__iteration=request.query_params["iteration"])
        if after is not None:
            lines = lines.filter(id__gt=after)
        if tail is not None:
            page = list(lines.order_by("-id")[:tail])[::-1]
            has_more = False
        else:
            page = list(lines.order_by("id")[: limit + 1])
            has_more = len(page) > limit
            page = page[:limit]
        next_after = page[-1].pk if page else after
        data = {"results": page, "has_more": has_more, "next_after": next_after}
        return Response(RunLogPageSerializer(data).data)

    @extend_schema(summary="Cancel a run", request=None, responses={200: RunDetailSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Queued nodes never start; running nodes stop at their next progress report."""
        run = self.get_object()
        runs.cancel(run)
        return Response(_detail(run))

    @extend_schema(
        summary="Re-run from a node",
        request=RerunSerializer,
        responses={201: RunDetailSerializer, 400: FIELD_ERRORS, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def rerun(self, request, pk=None):
        """A new run of the same version: `from_node` (default: the failed nodes) and everything
        downstream run again; the other nodes' results are reused, not executed."""
        run = self.get_object()
        form = RerunSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        new_run = runs.rerun(
            run,
            from_node=form.validated_data.get("from_node"),
            params=form.validated_data.get("params"),
            user=request.user,
        )
        return Response(_detail(new_run), status=status.HTTP_201_CREATED)


class PipelineNodeViewSet(FieldErrorResponses, viewsets.GenericViewSet):
    """`/api/pipelines/{pipeline_pk}/nodes/{key}/...`: actions on one node of the saved graph."""

    lookup_field = "key"
    lookup_value_regex = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
    serializer_class = NodeTestRequestSerializer

    def get_queryset(self):
        return services.visible_pipelines(self.request.user)

    @extend_schema(
        summary="Test one node on a worker",
        request=NodeTestRequestSerializer,
        responses={
            200: NodeTestResultSerializer,
            202: NodeTestPendingSerializer,
            400: FIELD_ERRORS,
            404: OpenApiResponse(description="No such pipeline or node."),
            504: OpenApiResponse(description="No worker answered within the timeout."),
        },
    )
    @action(detail=True, methods=["post"])
    def test(self, request, pipeline_pk=None, key=None):
        """Run this node once, on a worker, without creating a run. Inputs default to the
        upstream outputs of the latest finished run. A node failure is a 200 with `error`.
        A test still running after `wait` seconds answers 202; fetch its `result_url`."""
        pipeline = get_object_or_404(self.get_queryset(), pk=pipeline_pk)
        form = NodeTestRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        request_id, result = node_test.run_node_test(
            pipeline,
            key,
            inputs=data.get("inputs"),
            params=data.get("params"),
            config=data.get("config"),
            loop=data.get("loop"),
            timeout=data["timeout"],
            wait=data["wait"],
        )
        if result is not None:
            return Response(result)
        return _node_test_answer(request, request_id)


def _node_test_answer(request, request_id: str) -> Response:
    state, _, result = node_test.test_status(request_id)
    if state == "done":
        return Response(result)
    if state == "lost":
        return Response(result, status=status.HTTP_504_GATEWAY_TIMEOUT)
    url = request.build_absolute_uri(reverse("node-test-detail", kwargs={"pk": request_id}))
    pending = {"request_id": request_id, "state": "pending", "result_url": url}
    return Response(pending, status=status.HTTP_202_ACCEPTED)


class NodeTestViewSet(viewsets.ViewSet):
    """`/api/node-tests/{request_id}/`: the result of a node test that outlasted its request."""

    lookup_value_regex = r"[0-9a-f]{32}"

    @extend_schema(
        summary="The result of a node test",
        responses={
            200: NodeTestResultSerializer,
            202: NodeTestPendingSerializer,
            404: OpenApiResponse(description="No such test, or it expired."),
            504: OpenApiResponse(description="No worker answered within the timeout."),
        },
    )
    def retrieve(self, request, pk=None):
        state, pipeline_id, _ = node_test.test_status(pk)
        if state == "unknown" or not services.visible_pipelines(request.user).filter(pk=pipeline_id).exists():
            raise Http404("no such node test (results are kept for a few minutes)")
        return _node_test_answer(request, pk)
