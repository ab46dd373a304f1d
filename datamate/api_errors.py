"""Service exceptions become HTTP answers here, once, instead of in every view."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from drf_spectacular.utils import OpenApiResponse
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from datasets.errors import DatasetError, UploadTooLarge
from nodes.saved_tasks import SavedTaskInvalid
from nodes.secrets import SecretError
from pipelines.engine.runs import ParamsInvalid, RunConflict
from pipelines.graph_validation import GraphInvalid
from pipelines.services import NotFound, VersionConflict


def exception_handler(exc, context):
    if isinstance(exc, GraphInvalid):
        return Response({"errors": [error.as_dict() for error in exc.errors]}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, ParamsInvalid):
        # Each error names its field: `params.<name>`, `from_node`, `key`.
        return Response({"errors": exc.errors}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, VersionConflict):
        return Response(
            {"detail": str(exc), "current_version": exc.current}, status=status.HTTP_412_PRECONDITION_FAILED
        )
    if isinstance(exc, DatasetError | SecretError):
        return Response({"errors": [exc.as_dict()]}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, SavedTaskInvalid):
        return Response({"errors": exc.errors}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, UploadTooLarge):
        return Response(
            {"detail": str(exc), "errors": [{"field": "file", "message": str(exc)}]},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, RunConflict):
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, NotFound):
        return Response({"detail": str(exc)}, status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(
            {"detail": f"request body is larger than the limit of {limit} bytes"},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, RecursionError):
        # json.loads of a pathologically nested body; a client error, not a crash.
        return Response({"detail": "JSON body is nested too deeply"}, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)


#: The OpenAPI description of a 400 answered in the shape of `field_errors`.
FIELD_ERRORS = OpenApiResponse(description='Bad input: {"errors": [{"field", "message"}]}.')


def field_errors(detail, prefix: str = "") -> list[dict[str, str]]:
    """DRF's {"field": ["message"]} (nested) as our [{"field": "a.b", "message"}]."""
    if isinstance(detail, dict):
        return [
            error
            for key, value in detail.items()
            for error in field_errors(value, f"{prefix}.{key}" if prefix else str(key))
        ]
    if isinstance(detail, list):
        return [error for item in detail for error in field_errors(item, prefix)]
    return [{"field": prefix or "non_field_errors", "message": str(detail)}]


class FieldErrorResponses:
    """Viewset mixin: serializer errors are answered in the same `{"errors": [{field,
    message}]}` shape as service errors, so a form reads one shape."""

    def get_exception_handler(self):
        project_handler = super().get_exception_handler()

        def handler(exc, context):
            if isinstance(exc, ValidationError):
                return Response({"errors": field_errors(exc.detail)}, status=status.HTTP_400_BAD_REQUEST)
            return project_handler(exc, context)

        return handler
