"""Serializers of the datasets API (output shapes and request bodies; rules live in services)."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from datasets.exporters import EXPORT_FORMATS
from datasets.importers import FORMATS
from datasets.models import Dataset, DatasetVersion


class DatasetSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    version_count = serializers.IntegerField(read_only=True, default=0)
    latest_version = serializers.IntegerField(read_only=True, allow_null=True, default=None)

    class Meta:
        model = Dataset
        fields = ["id", "name", "description", "tags", "owner", "version_count", "latest_version", "created_at"]
        read_only_fields = ["created_at"]


class DatasetVersionSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    fields = serializers.SerializerMethodField(
        method_name="field_list", help_text="Each field's name and the JSON types of its values."
    )
    checksum = serializers.SerializerMethodField(help_text="sha256 of the stored JSON Lines bytes.")

    class Meta:
        model = DatasetVersion
        fields = [
            "number",
            "record_count",
            "size_bytes",
            "fields",
            "checksum",
            "source",
            "produced_by_run",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(
        {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "types": {"type": "array", "items": {"type": "string"}}},
            },
        }
    )
    def field_list(self, version) -> list:
        return version.manifest.get("fields", [])

    def get_checksum(self, version) -> str:
        return version.manifest.get("checksum", "")


class DatasetVersionDetailSerializer(DatasetVersionSerializer):
    samples = serializers.SerializerMethodField(help_text="The first few records, long strings cut short.")
    parts = serializers.SerializerMethodField(help_text="The JSON Lines parts in storage.")

    class Meta(DatasetVersionSerializer.Meta):
        fields = [*DatasetVersionSerializer.Meta.fields, "samples", "parts"]
        read_only_fields = fields

    @extend_schema_field({"type": "array", "items": {"type": "object"}})
    def get_samples(self, version) -> list:
        return version.manifest.get("samples", [])

    @extend_schema_field({"type": "array", "items": {"type": "object"}})
    def get_parts(self, version) -> list:
        return version.manifest.get("parts", [])


class VersionUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="JSONL, JSON array, CSV, Parquet, or a Label Studio JSON export.")
    format = serializers.ChoiceField(
        choices=FORMATS, required=False, help_text="Default: from the file name; label_studio must be named."
    )


class VersionFromPathSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="A file or folder inside DATAMATE_IMPORT_ROOTS (relative or absolute).")
    format = serializers.ChoiceField(
        choices=FORMATS, required=False, help_text="Default: from the name; `folder` for a folder."
    )


class RecordPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    pages = serializers.IntegerField()
    records = serializers.ListField(child=serializers.DictField())


class ExportFormatSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=EXPORT_FORMATS, default="jsonl")
