import json

from django.contrib import admin
from django.utils.html import format_html

from datasets import services
from datasets.models import Dataset, DatasetVersion


class DatasetVersionInline(admin.TabularInline):
    model = DatasetVersion
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["number", "record_count", "size_bytes", "source", "produced_by_run", "created_by", "created_at"]
    readonly_fields = fields
    ordering = ["-number"]

    def has_add_permission(self, request, obj=None):
        return False  # versions come from imports and runs, never from a form


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "created_at"]
    search_fields = ["name", "description"]
    list_filter = ["owner"]
    inlines = [DatasetVersionInline]

    def delete_model(self, request, obj):
        services.delete_dataset(obj)


@admin.register(DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    """Read-only: a version is immutable. Deleting one also deletes its record files."""

    list_display = ["__str__", "dataset", "number", "record_count", "size_bytes", "produced_by_run", "created_at"]
    list_select_related = ["dataset", "produced_by_run"]
    list_filter = ["dataset__owner"]
    search_fields = ["dataset__name", "source"]
    readonly_fields = [
        "dataset",
        "number",
        "record_count",
        "size_bytes",
        "source",
        "produced_by_run",
        "created_by",
        "created_at",
        "manifest_json",
    ]
    exclude = ["manifest"]

    @admin.display(description="manifest")
    def manifest_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.manifest, indent=2, ensure_ascii=False))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
