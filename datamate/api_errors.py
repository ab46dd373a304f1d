"""Service exceptions become HTTP answers here, once, instead of in every view."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from datasets.errors import DatasetError, UploadTooLarge
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
    if isinstance(exc, DatasetError):
        return Response({"errors": [exc.as_dict()]}, status=status.HTTP_400_BAD_REQUEST)
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
