"""REST API: thin adapters over `pipelines.services`.

Objects the user may not see are filtered out of every queryset, so they answer 404.
Service exceptions (invalid graph, version conflict) become HTTP answers in
`datamate.api_errors`.
"""

from django.http import HttpResponse
from django.utils.text import slugify
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from datamate.api_errors import FIELD_ERRORS, FieldErrorResponses
from nodes import registry
from pipelines import documents, services
from pipelines.graph_validation import validate_document
from pipelines.models import Pipeline, Template
from pipelines.serializers import (
    InstantiateSerializer,
    NodeConfigsSerializer,
    NodeHandlesSerializer,
    NodeTypeSerializer,
    PipelineSerializer,
    PipelineVersionDetailSerializer,
    PipelineVersionSerializer,
    SaveResultSerializer,
    TemplateCreateSerializer,
    TemplateSerializer,
    ValidationResultSerializer,
)

DOCUMENT_BODY = {"application/json": documents.DOCUMENT_SCHEMA}
SAVE_BODY = {
    "application/json": {
        **documents.DOCUMENT_SCHEMA,
        "properties": {
            **documents.DOCUMENT_SCHEMA["properties"],
            "message": {"type": "string", "maxLength": 500, "description": "Version message."},
        },
    }
}
GRAPH_ERRORS = OpenApiResponse(
    description='Invalid graph: {"errors": [{"node", "field", "message"}]}, each naming the field and node key.'
)


def _if_match_version(request) -> int | None:
    """The version the client last loaded, from `If-Match: "N"` (optimistic locking)."""
    header = request.headers.get("If-Match")
    if not header or header.strip() == "*":
        return None
    try:
        return int(header.strip().strip('"').removeprefix("W/").strip('"'))
    except ValueError:
        raise ValidationError({"If-Match": ['must be the version number as an ETag, e.g. "3"']}) from None


def _document_body(request) -> dict:
    if not isinstance(request.data, dict):
        raise ValidationError({"document": ["must be a JSON object"]})
    return dict(request.data)


def _version_number(value: str, field: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError({field: ["must be a version number"]}) from None
    if number < 1:
        raise ValidationError({field: ["must be a version number"]})
    return number


class PipelineViewSet(FieldErrorResponses, viewsets.ModelViewSet):
    serializer_class = PipelineSerializer
    lookup_value_regex = r"\d+"

    @extend_schema(parameters=[OpenApiParameter("search", str, description="Part of the name.")])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Pipeline.objects.none()
        queryset = services.visible_pipelines(self.request.user)
        search = self.request.query_params.get("search")
        return queryset.filter(name__icontains=search) if search else queryset

    def perform_create(self, serializer):
        serializer.instance = services.create_pipeline(
            owner=self.request.user,
            name=serializer.validated_data["name"],
            description=serializer.validated_data.get("description", ""),
        )

    def perform_update(self, serializer):
        services.update_details(
            serializer.instance,
            author=self.request.user,
            name=serializer.validated_data.get("name"),
            description=serializer.validated_data.get("description"),
        )

    @extend_schema(methods=["GET"], responses={200: DOCUMENT_BODY["application/json"]})
    @extend_schema(
        methods=["PUT"],
        request=SAVE_BODY,
        parameters=[
            OpenApiParameter(
                "If-Match", str, OpenApiParameter.HEADER, description='Version you edited, e.g. "3"; 412 if stale.'
            )
        ],
        responses={200: SaveResultSerializer, 400: GRAPH_ERRORS, 412: OpenApiResponse(description="Stale version")},
    )
    @action(detail=True, methods=["get", "put"])
    def graph(self, request, pk=None):
        """The pipeline document. PUT validates it and saves it as a new version."""
        pipeline = self.get_object()
        if request.method == "GET":
            response = Response(services.current_document(pipeline))
        else:
            body = _document_body(request)
            message = body.pop("message", "")
            if not isinstance(message, str):
                raise ValidationError({"message": ["must be a string"]})
            version = services.save_graph(
                pipeline, body, author=request.user, message=message, base_version=_if_match_version(request)
            )
            response = Response({"version": version.number, "document": services.current_document(pipeline)})
        response["ETag"] = f'"{pipeline.version}"'
        return response

    @extend_schema(request=DOCUMENT_BODY, responses={200: ValidationResultSerializer})
    @action(detail=True, methods=["post"])
    def validate(self, request, pk=None):
        """Validate a document (the body) or, with an empty body, the saved graph."""
        pipeline = self.get_object()
        document = _document_body(request) if request.body else services.current_document(pipeline)
        errors = validate_document(document)
        return Response({"valid": not errors, "errors": [error.as_dict() for error in errors]})

    @extend_schema(
        parameters=[OpenApiParameter("version", int, description="Export this version instead of the latest.")],
        responses={200: DOCUMENT_BODY["application/json"]},
    )
    @action(detail=True, methods=["get"])
    def export(self, request, pk=None):
        """The document as a file: sorted keys, stable order, ready for git."""
        pipeline = self.get_object()
        number = request.query_params.get("version")
        document = services.export_document(pipeline, _version_number(number, "version") if number else None)
        response = HttpResponse(documents.dumps(document), content_type="application/json")
        filename = slugify(pipeline.name) or f"pipeline-{pipeline.pk}"
        response["Content-Disposition"] = f'attachment; filename="{filename}.json"'
        return response

    @extend_schema(request=DOCUMENT_BODY, responses={201: PipelineSerializer, 400: GRAPH_ERRORS})
    @action(detail=False, methods=["post"], url_path="import")
    def import_(self, request):
        """Create a pipeline from a document; it becomes version 1."""
        pipeline = services.import_pipeline(owner=request.user, document=_document_body(request))
        return Response(PipelineSerializer(pipeline).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: PipelineVersionSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def versions(self, request, pk=None):
        pipeline = self.get_object()
        page = self.paginate_queryset(pipeline.versions.select_related("author"))
        return self.get_paginated_response(PipelineVersionSerializer(page, many=True).data)

    @extend_schema(responses={200: PipelineVersionDetailSerializer})
    @action(detail=True, methods=["get"], url_path=r"versions/(?P<number>\d+)")
    def version(self, request, pk=None, number=None):
        """One version, with its document rebuilt from history."""
        snapshot = services.version_snapshot(self.get_object(), int(number))
        data = PipelineVersionSerializer(snapshot.version).data
        return Response({**data, "document": snapshot.document})

    @extend_schema(
        parameters=[OpenApiParameter("against", int, required=True, description="The older version.")],
        responses={200: {"type": "object"}},
    )
    @action(detail=True, methods=["get"], url_path=r"versions/(?P<number>\d+)/diff")
    def diff(self, request, pk=None, number=None):
        """Nodes and edges added, removed and changed (config changes field by field)."""
        pipeline = self.get_object()  # another user's pipeline is a 404 whatever the query says
        against = _version_number(request.query_params.get("against"), "against")
        return Response(services.diff_versions(pipeline, int(number), against))

    @extend_schema(request=None, responses={201: SaveResultSerializer})
    @action(detail=True, methods=["post"], url_path=r"versions/(?P<number>\d+)/restore")
    def restore(self, request, pk=None, number=None):
        """Write a new version whose content equals version `number`."""
        pipeline = self.get_object()
        version = services.restore_version(pipeline, int(number), author=request.user)
        return Response(
            {"version": version.number, "document": services.current_document(pipeline)},
            status=status.HTTP_201_CREATED,
        )


class TemplateViewSet(
    FieldErrorResponses,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = TemplateSerializer
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Template.objects.none()
        return services.visible_templates(self.request.user).select_related("owner")

    @extend_schema(request=TemplateCreateSerializer, responses={201: TemplateSerializer})
    def create(self, request):
        """Save a pipeline (its latest or a given version) as a template."""
        form = TemplateCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        pipeline = services.visible_pipelines(request.user).filter(pk=form.validated_data["pipeline"]).first()
        if pipeline is None:
            raise ValidationError({"pipeline": ["no such pipeline"]})
        try:
            template = services.save_as_template(
                pipeline,
                owner=request.user,
                name=form.validated_data["name"],
                description=form.validated_data["description"],
                version=form.validated_data.get("version"),
            )
        except services.NotFound:
            raise ValidationError({"version": ["this pipeline has no such version"]}) from None
        return Response(TemplateSerializer(template).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        if instance.built_in:
            raise PermissionDenied("built-in templates cannot be deleted")
        instance.delete()

    @extend_schema(request=InstantiateSerializer, responses={201: PipelineSerializer, 400: GRAPH_ERRORS})
    @action(detail=True, methods=["post"])
    def instantiate(self, request, pk=None):
        """Create a new pipeline from this template."""
        template = self.get_object()
        form = InstantiateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        pipeline = services.create_from_template(template, owner=request.user, name=form.validated_data.get("name"))
        return Response(PipelineSerializer(pipeline).data, status=status.HTTP_201_CREATED)


class NodeTypeViewSet(FieldErrorResponses, viewsets.ViewSet):
    """The node-type catalogue: the designer builds its palette and config forms from it."""

    serializer_class = NodeTypeSerializer
    lookup_value_regex = r"[a-z0-9_.-]+"

    @extend_schema(responses={200: NodeTypeSerializer(many=True)})
    def list(self, request):
        return Response([node_type.describe() for node_type in registry.all_types()])

    @extend_schema(responses={200: NodeTypeSerializer})
    def retrieve(self, request, pk=None):
        try:
            return Response(registry.get(pk).describe())
        except registry.UnknownNodeType:
            return Response({"detail": f"unknown node type {pk!r}"}, status=status.HTTP_404_NOT_FOUND)

    @extend_schema(
        request=NodeConfigsSerializer,
        responses={200: NodeHandlesSerializer, 400: FIELD_ERRORS},
    )
    @action(detail=False, methods=["post"])
    def handles(self, request):
        """The source handles of nodes with these configs: what a handle depends on is the
        type's own rule (a Parallel node has one handle per branch), so the designer asks."""
        form = NodeConfigsSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        nodes = form.validated_data["nodes"]
        if len(nodes) > documents.MAX_NODES:
            raise ValidationError({"nodes": [f"at most {documents.MAX_NODES} nodes"]})
        handles = []
        for index, node in enumerate(nodes):
            try:
                node_type = registry.get(node["type"])
            except registry.UnknownNodeType:
                raise ValidationError({f"nodes[{index}].type": [f"unknown node type {node['type']!r}"]}) from None
            handles.append(node_type.output_handles(node["config"]))
        return Response({"handles": handles})
