"""`/api/secrets/`: your stored secrets (API keys), a thin adapter over `nodes.secrets`.

Another user's secret answers 404. `value` is write-only: no response carries it, nor its
ciphertext. Bad input answers 400 as {"errors": [{"field", "message"}]}.
"""

from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets

from datamate.api_errors import FIELD_ERRORS, FieldErrorResponses
from nodes import secrets
from nodes.models import Secret


class SecretSerializer(serializers.ModelSerializer):
    value = serializers.CharField(
        write_only=True,
        trim_whitespace=False,
        max_length=secrets.MAX_VALUE_LENGTH,
        style={"input_type": "password"},
        required=False,
        help_text="The secret value: required to create one; leave it out of a change to keep it. Write-only: "
        "it is stored encrypted and never returned.",
    )

    class Meta:
        model = Secret
        fields = ["id", "name", "description", "value", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]
        # Uniqueness is the service's rule (it answers 400 naming `name`).
        validators = []


@extend_schema_view(
    create=extend_schema(responses={201: SecretSerializer, 400: FIELD_ERRORS}),
    update=extend_schema(responses={200: SecretSerializer, 400: FIELD_ERRORS}),
    partial_update=extend_schema(responses={200: SecretSerializer, 400: FIELD_ERRORS}),
)
@method_decorator(sensitive_post_parameters("value"), name="dispatch")
class SecretViewSet(FieldErrorResponses, viewsets.ModelViewSet):
    """Create, list, rename, re-key and delete your secrets. A node names one in
    `api_key_secret`; only its executor reads the value."""

    serializer_class = SecretSerializer
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Secret.objects.none()
        return Secret.objects.filter(owner=self.request.user)

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = secrets.create_secret(
            owner=self.request.user, name=data["name"], value=data.get("value"), description=data.get("description", "")
        )

    def perform_update(self, serializer):
        data = serializer.validated_data
        secrets.update_secret(
            serializer.instance, name=data.get("name"), value=data.get("value"), description=data.get("description")
        )

    def perform_destroy(self, instance):
        secrets.delete_secret(instance)
