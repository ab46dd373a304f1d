"""`/api/operators/`: the operator catalogue, read-only, for the designer's cleaning forms."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from nodes.operators import registry
from nodes.operators.base import KINDS


class OperatorSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=KINDS)
    label = serializers.CharField()
    description = serializers.CharField()
    version = serializers.CharField()
    config_schema = serializers.JSONField()
    default_config = serializers.JSONField()


class OperatorViewSet(viewsets.ViewSet):
    """Every registered operator with its config JSON Schema and version."""

    serializer_class = OperatorSerializer
    permission_classes = [IsAuthenticated]
    lookup_value_regex = r"[A-Za-z0-9_.-]+"

    @extend_schema(responses={200: OperatorSerializer(many=True)})
    def list(self, request):
        return Response(registry.describe())

    @extend_schema(responses={200: OperatorSerializer})
    def retrieve(self, request, pk=None):
        try:
            return Response(registry.get(pk).describe())
        except registry.UnknownOperator:
            return Response({"detail": f"unknown operator {pk!r}"}, status=status.HTTP_404_NOT_FOUND)
