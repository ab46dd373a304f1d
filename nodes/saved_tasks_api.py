"""`/api/saved-tasks/`: your saved collection and cleaning tasks, a thin adapter over
`nodes.saved_tasks`.

Another user's task answers 404. `?kind=collection|cleaning` filters the list. Bad input
answers 400 as {"errors": [{"field", "message"}]}: `kind`, `name` (also a name you already
use for that kind), `config.<field>` (checked like the node's config).
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets

from datamate.api_errors import FIELD_ERRORS, FieldErrorResponses
from nodes import saved_tasks
from nodes.models import SavedTask


class SavedTaskSerializer(serializers.ModelSerializer):
    config = serializers.JSONField(
        help_text="The node config the task stands for (Data Collection or Data Cleaning, by kind), without `task`."
    )

    class Meta:
        model = SavedTask
        fields = ["id", "kind", "name", "description", "config", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]
        # Uniqueness is the service's rule (it answers 400 naming `name`).
        validators = []
        extra_kwargs = {"name": {"trim_whitespace": True}, "description": {"required": False}}


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("kind", OpenApiTypes.STR, enum=list(saved_tasks.NODE_TYPES))],
        responses={200: SavedTaskSerializer(many=True), 400: FIELD_ERRORS},
    ),
    create=extend_schema(responses={201: SavedTaskSerializer, 400: FIELD_ERRORS}),
    update=extend_schema(responses={200: SavedTaskSerializer, 400: FIELD_ERRORS}),
    partial_update=extend_schema(responses={200: SavedTaskSerializer, 400: FIELD_ERRORS}),
)
class SavedTaskViewSet(FieldErrorResponses, viewsets.ModelViewSet):
    """Create, list, change and delete your saved tasks. A Data Collection or Data Cleaning
    node names one in `task`; its own keys override the task's."""

    serializer_class = SavedTaskSerializer
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return SavedTask.objects.none()
        queryset = saved_tasks.visible_saved_tasks(self.request.user)
        if self.action == "list" and "kind" in self.request.query_params:
            queryset = queryset.filter(kind=saved_tasks.check_kind(self.request.query_params["kind"]))
        return queryset

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = saved_tasks.create_saved_task(
            owner=self.request.user,
            kind=data["kind"],
            name=data["name"],
            config=data["config"],
            description=data.get("description", ""),
        )

    def perform_update(self, serializer):
        data = serializer.validated_data
        saved_tasks.update_saved_task(
            serializer.instance,
            kind=data.get("kind"),
            name=data.get("name"),
            description=data.get("description"),
            config=data.get("config"),
        )

    def perform_destroy(self, instance):
        saved_tasks.delete_saved_task(instance)
