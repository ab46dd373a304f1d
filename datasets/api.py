"""REST API of datasets: thin adapters over `datasets.services`.

Datasets the user may not see are filtered out of every queryset, so they answer 404.
Bad input answers 400 as {"errors": [{"field", "message"}]}; an upload over
DATAMATE_MAX_UPLOAD_BYTES answers 413 before its body is read.
"""

from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db.models import Count, Max
from django.http import Http404, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from datamate.api_errors import FIELD_ERRORS, FieldErrorResponses
from datasets import services
from datasets.errors import DatasetError, UploadTooLarge
from datasets.exporters import CONTENT_TYPES, EXPORT_FORMATS, LABEL_STUDIO_OPTIONS
from datasets.models import Dataset, DatasetVersion
from datasets.serializers import (
    DatasetSerializer,
    DatasetVersionDetailSerializer,
    DatasetVersionSerializer,
    RecordPageSerializer,
    VersionFromPathSerializer,
    VersionUploadSerializer,
)

TOO_LARGE = OpenApiResponse(description="The upload is larger than DATAMATE_MAX_UPLOAD_BYTES.")


async def _async_chunks(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Pull a sync generator chunk by chunk in a worker thread (the event loop never blocks)."""
    done = object()
    pull = sync_to_async(next, thread_sensitive=False)
    iterator = iter(chunks)
    while (chunk := await pull(iterator, done)) is not done:
        yield chunk


def _int_param(request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise DatasetError(name, "must be a whole number") from None


class DatasetViewSet(FieldErrorResponses, viewsets.ModelViewSet):
    serializer_class = DatasetSerializer
    lookup_value_regex = r"\d+"

    @extend_schema(parameters=[OpenApiParameter("search", str, description="Part of the name.")])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Dataset.objects.none()
        queryset = (
            services.visible_datasets(self.request.user)
            .annotate(version_count=Count("versions"), latest_version=Max("versions__number"))
            .order_by("name", "pk")
        )
        search = self.request.query_params.get("search")
        return queryset.filter(name__icontains=search) if search else queryset

    @extend_schema(responses={201: DatasetSerializer, 400: FIELD_ERRORS})
    def create(self, request, *args, **kwargs):
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.create_dataset(
            owner=self.request.user,
            name=data["name"],
            description=data.get("description", ""),
            tags=data.get("tags", []),
        )

    def perform_update(self, serializer):
        data = serializer.validated_data
        services.update_dataset(
            serializer.instance, name=data.get("name"), description=data.get("description"), tags=data.get("tags")
        )

    def perform_destroy(self, instance):
        services.delete_dataset(instance)


class DatasetVersionViewSet(
    FieldErrorResponses,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Versions of one dataset: immutable; a new one comes from an upload or a server path."""

    serializer_class = DatasetVersionSerializer
    lookup_field = "number"
    lookup_value_regex = r"\d+"

    def get_dataset(self) -> Dataset:
        if not hasattr(self, "_dataset"):
            dataset = services.visible_datasets(self.request.user).filter(pk=self.kwargs["dataset_pk"]).first()
            if dataset is None:
                raise Http404("no such dataset")
            self._dataset = dataset
        return self._dataset

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return DatasetVersion.objects.none()
        return DatasetVersion.objects.filter(dataset=self.get_dataset()).select_related("created_by", "dataset")

    def get_serializer_class(self):
        return DatasetVersionDetailSerializer if self.action == "retrieve" else DatasetVersionSerializer

    def perform_content_negotiation(self, request, force=False):
        # `?format=` names the export's file format here, not a DRF renderer.
        if self.action == "export":
            return JSONRenderer(), JSONRenderer.media_type
        return super().perform_content_negotiation(request, force)

    @extend_schema(
        request={"multipart/form-data": VersionUploadSerializer, "application/json": VersionFromPathSerializer},
        responses={201: DatasetVersionDetailSerializer, 400: FIELD_ERRORS, 413: TOO_LARGE},
    )
    def create(self, request, dataset_pk=None):
        """Import a new version: upload a `file`, or name a server `path` inside the import roots."""
        dataset = self.get_dataset()
        limit = settings.DATAMATE_MAX_UPLOAD_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:  # refuse before the body is read
            raise UploadTooLarge(limit)
        if not isinstance(request.data, dict):
            raise DatasetError("path", 'send a multipart upload or a JSON object such as {"path": "..."}')
        upload = request.FILES.get("file")
        path = request.data.get("path")
        fmt = request.data.get("format") or None
        if fmt is not None and not isinstance(fmt, str):
            raise DatasetError("format", "must be a string")
        if upload is not None and path:
            raise DatasetError("path", "send either a file or a path, not both")
        if upload is not None:
            if upload.size > limit:
                raise UploadTooLarge(limit)
            upload.file.seek(0)
            source = services.Source.upload(upload.file, upload.name)
        elif path:
            if not isinstance(path, str):
                raise DatasetError("path", "must be a string")
            source = services.Source.server_path(path)
        else:
            raise DatasetError("file", "upload a file (multipart field `file`) or give a server `path`")
        version = services.import_version(dataset, source, fmt, user=request.user)
        return Response(DatasetVersionDetailSerializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[
            OpenApiParameter("page", int, description="1-based page number."),
            OpenApiParameter("page_size", int, description=f"Records per page (1 to {services.MAX_PAGE_SIZE})."),
            OpenApiParameter("fields", str, description="Comma-separated fields to keep."),
        ],
        responses={200: RecordPageSerializer, 400: FIELD_ERRORS},
    )
    @action(detail=True, methods=["get"])
    def records(self, request, dataset_pk=None, number=None):
        """A page of records, optionally only some fields."""
        fields = [f.strip() for f in request.query_params.get("fields", "").split(",") if f.strip()]
        page = services.preview(
            self.get_object(),
            page=_int_param(request, "page", 1),
            page_size=_int_param(request, "page_size", 50),
            fields=fields or None,
        )
        return Response(page)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def stats(self, request, dataset_pk=None, number=None):
        """Count, and per field: types, presence, text-length histogram, numeric range, top values."""
        return Response(services.stats(self.get_object()))

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=list(EXPORT_FORMATS), description="Default: jsonl."),
            OpenApiParameter("label_field", str, description="label_studio: the field holding the label (label)."),
            OpenApiParameter("text_field", str, description="label_studio: the choices' to_name (text)."),
            OpenApiParameter("label_as", str, enum=["predictions", "annotations"], description="label_studio."),
            OpenApiParameter("score_field", str, description="label_studio: a field to give as prediction score."),
        ],
        responses={
            **{(200, content_type.split(";")[0]): OpenApiTypes.BINARY for content_type in CONTENT_TYPES.values()},
            400: FIELD_ERRORS,
        },
    )
    @action(detail=True, methods=["get"])
    def export(self, request, dataset_pk=None, number=None):
        """Download the version as a JSONL, CSV, Parquet or Label Studio JSON file, streamed."""
        options = {name: request.query_params[name] for name in LABEL_STUDIO_OPTIONS if name in request.query_params}
        export = services.export_version(self.get_object(), request.query_params.get("format") or "jsonl", options)
        chunks = export.chunks
        if isinstance(request._request, ASGIRequest):
            # Under ASGI Django would read a sync iterator into a list first: the whole file in memory.
            chunks = _async_chunks(chunks)
        response = StreamingHttpResponse(chunks, content_type=export.content_type)
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        return response
