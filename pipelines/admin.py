"""Admin for pipelines, versions and templates.

The graph is edited as its JSON document in the pipeline form and saved through
`services.save_graph`, like every other client: validation errors show on the form, and
each save is a new version. Nodes and edges are shown inline, read-only; their history
(simple-history) is on the history pages.
"""

from django import forms
from django.contrib import admin, messages
from simple_history.admin import SimpleHistoryAdmin

from pipelines import documents, schedules, services
from pipelines.engine import runs
from pipelines.graph_validation import GraphInvalid, validate_document
from pipelines.models import (
    Edge,
    Node,
    NodeResultCache,
    NodeRun,
    NodeRunLog,
    Pipeline,
    PipelineVersion,
    Run,
    Schedule,
    Template,
)


class PipelineAdminForm(forms.ModelForm):
    document = forms.JSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 30, "cols": 120, "style": "font-family: monospace"}),
        help_text="The graph: parameters, nodes and edges. Name and description come from the fields above.",
    )
    message = forms.CharField(required=False, max_length=500, help_text="Version message.")

    class Meta:
        model = Pipeline
        fields = ["name", "description", "owner"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # On simple-history's revert page the instance is a past state: show that version's graph.
            past_version = getattr(getattr(self.instance, "_history", None), "pipeline_version", None)
            if past_version:
                document = services.version_document(self.instance, past_version)
            else:
                document = services.current_document(self.instance)
            self.fields["document"].initial = {k: document[k] for k in ("parameters", "nodes", "edges")}

    def clean(self):
        cleaned = super().clean()
        body = cleaned.get("document") or {}
        if not isinstance(body, dict):
            raise forms.ValidationError({"document": "must be a JSON object"})
        document = {**body, "name": cleaned.get("name") or "", "description": cleaned.get("description") or ""}
        errors = validate_document(document)
        if errors:
            raise forms.ValidationError({"document": [str(e) for e in errors]})
        cleaned["full_document"] = document
        return cleaned


class NodeInline(admin.TabularInline):
    model = Node
    fk_name = "pipeline"
    fields = ["key", "type", "label", "parent", "config", "settings"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class EdgeInline(admin.TabularInline):
    model = Edge
    fields = ["source", "source_handle", "target"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class VersionInline(admin.TabularInline):
    model = PipelineVersion
    fields = ["number", "message", "author", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0


@admin.register(Pipeline)
class PipelineAdmin(SimpleHistoryAdmin):
    form = PipelineAdminForm
    list_display = ["name", "owner", "version", "updated_at"]
    list_filter = ["owner"]
    search_fields = ["name", "description"]
    readonly_fields = ["version"]
    inlines = [NodeInline, EdgeInline, VersionInline]
    actions = ["validate_pipelines"]
    history_list_display = ["pipeline_version"]

    def save_model(self, request, obj, form, change):
        document = form.cleaned_data["full_document"]
        message = form.cleaned_data.get("message") or ("Edited in admin" if change else "Created in admin")
        if change:
            services.save_graph(obj, document, author=request.user, message=message)
            if "owner" in form.changed_data:
                services.change_owner(obj, form.cleaned_data["owner"])
        else:
            created = services.import_pipeline(
                owner=form.cleaned_data["owner"], document=document, author=request.user, message=message
            )
            obj.pk = created.pk
            obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        # Inlines are read-only; the graph was saved as a whole in save_model.
        pass

    def construct_change_message(self, request, form, formsets, add=False):
        return f"Saved as version {form.instance.version}"

    @admin.action(description="Validate selected pipelines")
    def validate_pipelines(self, request, queryset):
        for pipeline in queryset:
            errors = validate_document(services.current_document(pipeline))
            if errors:
                summary = "; ".join(str(e) for e in errors)
                self.message_user(request, f"{pipeline.name}: {len(errors)} problem(s): {summary}", messages.ERROR)
            else:
                self.message_user(request, f"{pipeline.name}: valid", messages.SUCCESS)


@admin.register(Node)
class NodeAdmin(SimpleHistoryAdmin):
    """Read-only: a node changes with its pipeline's document, as part of a version."""

    list_display = ["key", "type", "pipeline", "label"]
    list_filter = ["type"]
    search_fields = ["key", "label", "pipeline__name"]
    history_list_display = ["pipeline_version"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Edge)
class EdgeAdmin(NodeAdmin):
    list_display = ["pipeline", "source", "source_handle", "target"]
    list_filter = ["source_handle"]
    search_fields = ["pipeline__name", "source__key", "target__key"]


@admin.register(PipelineVersion)
class PipelineVersionAdmin(admin.ModelAdmin):
    list_display = ["pipeline", "number", "message", "author", "created_at"]
    search_fields = ["pipeline__name", "message"]
    readonly_fields = ["pipeline", "number", "message", "author", "created_at", "document"]
    actions = ["restore"]

    @admin.display(description="Document")
    def document(self, obj):
        return documents.dumps(services.version_document(obj.pipeline, obj.number))

    def has_add_permission(self, request):
        return False

    @admin.action(description="Restore selected version (writes a new version)")
    def restore(self, request, queryset):
        for version in queryset.select_related("pipeline"):
            try:
                new = services.restore_version(version.pipeline, version.number, author=request.user)
            except GraphInvalid as exc:
                self.message_user(request, f"{version}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{version.pipeline}: restored v{version.number} as v{new.number}")


class TemplateAdminForm(forms.ModelForm):
    class Meta:
        model = Template
        fields = ["name", "slug", "description", "owner", "document"]

    def clean_document(self):
        document = self.cleaned_data["document"]
        errors = validate_document(document)
        if errors:
            raise forms.ValidationError([str(e) for e in errors])
        return documents.canonical(document)


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    form = TemplateAdminForm
    list_display = ["name", "owner", "slug", "created_at"]
    search_fields = ["name", "description"]
    actions = ["instantiate"]

    @admin.action(description="Create a pipeline from each selected template")
    def instantiate(self, request, queryset):
        for template in queryset:
            pipeline = services.create_from_template(template, owner=request.user)
            self.message_user(request, f"Created pipeline {pipeline.name!r} (#{pipeline.pk})")


# --- runs ---------------------------------------------------------------------------


class NodeRunInline(admin.TabularInline):
    model = NodeRun
    fields = ["node_key", "iteration", "state", "attempt", "worker", "progress", "records_out", "error", "finished_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    max_num = 0


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    """Runs are written by the engine only: read-only here, with cancel and re-run actions."""

    list_display = ["id", "pipeline", "version", "state", "trigger", "created_by", "created_at", "finished_at"]
    list_filter = ["state", "trigger"]
    search_fields = ["pipeline__name"]
    readonly_fields = [field.name for field in Run._meta.fields]
    inlines = [NodeRunInline]
    actions = ["cancel", "rerun_from_failed"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Cancel selected runs")
    def cancel(self, request, queryset):
        for run in queryset:
            try:
                runs.cancel(run)
            except runs.RunConflict as exc:
                self.message_user(request, str(exc), messages.WARNING)
            else:
                self.message_user(request, f"run {run.pk}: cancelled")

    @admin.action(description="Re-run selected runs from their failed nodes")
    def rerun_from_failed(self, request, queryset):
        for run in queryset.select_related("pipeline"):
            try:
                new = runs.rerun(run, user=request.user)
            except (runs.ParamsInvalid, runs.RunConflict) as exc:
                self.message_user(request, f"run {run.pk}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"run {run.pk}: re-run as run {new.pk}")


class NodeRunLogInline(admin.TabularInline):
    model = NodeRunLog
    fields = ["created_at", "level", "message"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0


@admin.register(NodeRun)
class NodeRunAdmin(admin.ModelAdmin):
    list_display = [
        "node_key",
        "iteration",
        "run",
        "state",
        "attempt",
        "worker",
        "progress",
        "started_at",
        "finished_at",
    ]
    list_filter = ["state"]
    search_fields = ["node_key", "run__pipeline__name", "worker"]
    readonly_fields = [field.name for field in NodeRun._meta.fields]
    inlines = [NodeRunLogInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(NodeRunLog)
class NodeRunLogAdmin(admin.ModelAdmin):
    list_display = ["created_at", "node_run", "level", "message"]
    list_filter = ["level"]
    readonly_fields = ["node_run", "level", "message", "created_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(NodeResultCache)
class NodeResultCacheAdmin(admin.ModelAdmin):
    list_display = ["key", "node_type", "created_at"]
    list_filter = ["node_type"]
    readonly_fields = ["key", "node_type", "output", "handles", "records_in", "records_out", "source", "created_at"]

    def has_add_permission(self, request):
        return False


# --- schedules ----------------------------------------------------------------------


class ScheduleAdminForm(forms.ModelForm):
    class Meta:
        model = Schedule
        fields = ["pipeline", *schedules.EDITABLE_FIELDS]
        widgets = {"params": forms.Textarea(attrs={"rows": 4, "cols": 80, "style": "font-family: monospace"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["pipeline"].disabled = True  # a schedule stays with its pipeline

    def clean(self):
        """The same checks as the API, each error on its field (params.<name> on params)."""
        cleaned = super().clean()
        pipeline = cleaned.get("pipeline")
        if pipeline is None or self.errors:
            return cleaned
        try:
            schedules.check_schedule(pipeline, {name: cleaned.get(name) for name in schedules.EDITABLE_FIELDS})
        except runs.ParamsInvalid as exc:
            by_field: dict[str, list[str]] = {}  # every error shown, several on one field too
            for error in exc.errors:
                by_field.setdefault(error["field"].split(".")[0], []).append(f"{error['field']}: {error['message']}")
            raise forms.ValidationError(by_field) from None
        return cleaned


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    """Written through pipelines.schedules, so the beat entry (PeriodicTask) follows every change."""

    form = ScheduleAdminForm
    list_display = ["id", "pipeline", "cron", "timezone", "description", "overlap", "enabled", "next_run"]
    list_filter = ["enabled", "overlap"]
    search_fields = ["pipeline__name", "cron"]
    readonly_fields = [
        "description",
        "crontab",
        "next_runs",
        "periodic_task",
        "last_fire_at",
        "last_outcome",
        "last_message",
        "pending_fire_at",
    ]

    @admin.display(description="In words")
    def description(self, obj):
        return schedules.summary(obj)["description"] if obj.pk else "-"

    @admin.display(description="Celery crontab (m h dom mon dow)")
    def crontab(self, obj):
        return " ".join(schedules.summary(obj)["crontab"].values()) if obj.pk else "-"

    @admin.display(description="Next fire times")
    def next_runs(self, obj):
        if not obj.pk:
            return "-"
        return "\n".join(schedules.summary(obj)["next_runs"]) or "none (disabled or past its end)"

    @admin.display(description="Next fire")
    def next_run(self, obj):
        upcoming = schedules.next_runs(obj, count=1)
        return upcoming[0].isoformat() if upcoming else "-"

    def save_model(self, request, obj, form, change):
        values = {name: form.cleaned_data.get(name) for name in schedules.EDITABLE_FIELDS}
        values["params"] = values["params"] or {}
        if change:
            saved = schedules.update_schedule(obj, **values)
        else:
            saved = schedules.create_schedule(form.cleaned_data["pipeline"], **values)
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request, obj):
        schedules.delete_schedule(obj)

    def delete_queryset(self, request, queryset):
        for schedule in queryset:
            schedules.delete_schedule(schedule)
