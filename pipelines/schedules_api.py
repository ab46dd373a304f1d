"""REST API of schedules: thin adapters over `pipelines.schedules`.

`/api/pipelines/{pipeline_pk}/schedules/` is reached through `services.visible_pipelines`, so
another user's pipeline answers 404. Bad values become 400s naming the field (`cron`,
`timezone`, `params.<name>`, `overlap`, `version`, `end_at`) in `datamate.api_errors`.
"""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from datamate.api_errors import FieldErrorResponses
from pipelines import schedules, services
from pipelines.models import Schedule

FIELD_ERRORS = OpenApiResponse(
    description='Bad input: {"errors": [{"field", "message"}]} with field "cron", "timezone", "params.<name>", '
    '"overlap", "version", "end_at" or the field of a value of the wrong type.'
)
NEXT_RUNS_HELP = f"The next {schedules.NEXT_RUNS} fire times, ISO 8601 with the offset of the schedule's time zone."


class CrontabSerializer(serializers.Serializer):
    """The Celery crontab that beat runs (day_of_week: 0 = Sunday)."""

    minute = serializers.CharField()
    hour = serializers.CharField()
    day_of_month = serializers.CharField()
    month_of_year = serializers.CharField()
    day_of_week = serializers.CharField()


class ScheduleSerializer(serializers.ModelSerializer):
    dialect = serializers.SerializerMethodField(help_text='"quartz" or "unix", as the expression was read.')
    crontab = serializers.SerializerMethodField()
    description = serializers.SerializerMethodField(help_text="The expression in words, with its time zone.")
    next_runs = serializers.SerializerMethodField(help_text=NEXT_RUNS_HELP)
    # Declared so the schema admits "" (the schedule has not fired yet).
    last_outcome = serializers.ChoiceField(choices=Schedule.Outcome.choices, allow_blank=True, read_only=True)

    class Meta:
        model = Schedule
        fields = [
            "id",
            "pipeline",
            "cron",
            "timezone",
            "params",
            "overlap",
            "catch_up",
            "enabled",
            "start_at",
            "end_at",
            "version",
            "dialect",
            "crontab",
            "description",
            "next_runs",
            "periodic_task",
            "last_fire_at",
            "last_outcome",
            "last_message",
            "pending_fire_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def _summary(self, schedule: Schedule) -> dict:
        cache = self.context.setdefault("schedule_summaries", {})
        if schedule.pk not in cache:
            cache[schedule.pk] = schedules.summary(schedule)
        return cache[schedule.pk]

    def get_dialect(self, schedule) -> str:
        return self._summary(schedule)["dialect"]

    @extend_schema_field(CrontabSerializer)
    def get_crontab(self, schedule):
        return self._summary(schedule)["crontab"]

    def get_description(self, schedule) -> str:
        return self._summary(schedule)["description"]

    def get_next_runs(self, schedule) -> list[str]:
        return self._summary(schedule)["next_runs"]


class ScheduleInputSerializer(serializers.Serializer):
    """The body of create (POST), replace (PUT) and change (PATCH)."""

    cron = serializers.CharField(
        max_length=200,
        help_text="Unix (`0 2 * * *`: day-of-week 0-7, 0 and 7 = Sunday) or Quartz (`0 0 2 * * ?`: seconds "
        "first, day-of-week 1-7 = Sunday-Saturday, optional year).",
    )
    timezone = serializers.CharField(max_length=64, required=False, help_text="IANA name; default UTC.")
    params = serializers.JSONField(required=False, help_text="Parameter values, checked against the pipeline's.")
    overlap = serializers.ChoiceField(choices=Schedule.Overlap.choices, required=False, help_text="Default skip.")
    catch_up = serializers.BooleanField(
        required=False, help_text="After beat was down, run once for the latest missed fire (default false)."
    )
    enabled = serializers.BooleanField(required=False)
    start_at = serializers.DateTimeField(required=False, allow_null=True)
    end_at = serializers.DateTimeField(required=False, allow_null=True)
    version = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, help_text="Pinned pipeline version; null = the latest."
    )


class PreviewRequestSerializer(serializers.Serializer):
    cron = serializers.CharField(max_length=200, allow_blank=True)
    timezone = serializers.CharField(max_length=64, required=False, default="UTC")


class PreviewSerializer(serializers.Serializer):
    cron = serializers.CharField()
    timezone = serializers.CharField()
    dialect = serializers.CharField()
    crontab = CrontabSerializer()
    description = serializers.CharField()
    next_runs = serializers.ListField(child=serializers.CharField(), help_text=NEXT_RUNS_HELP)


@extend_schema_view(
    list=extend_schema(summary="Schedules of this pipeline"),
    retrieve=extend_schema(summary="A schedule, in words, with its next fire times"),
    destroy=extend_schema(summary="Delete a schedule (and its beat entry)"),
)
class PipelineScheduleViewSet(FieldErrorResponses, viewsets.ModelViewSet):
    """`/api/pipelines/{pipeline_pk}/schedules/`: cron schedules that celery beat fires."""

    serializer_class = ScheduleSerializer
    lookup_value_regex = r"\d+"

    def pipeline(self):
        return get_object_or_404(services.visible_pipelines(self.request.user), pk=self.kwargs["pipeline_pk"])

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Schedule.objects.none()
        return Schedule.objects.filter(pipeline=self.pipeline()).select_related("pipeline")

    def _input(self, *, partial: bool) -> dict:
        form = ScheduleInputSerializer(data=self.request.data, partial=partial)
        form.is_valid(raise_exception=True)
        return dict(form.validated_data)

    @extend_schema(
        summary="Create a schedule",
        request=ScheduleInputSerializer,
        responses={201: ScheduleSerializer, 400: FIELD_ERRORS},
    )
    def create(self, request, pipeline_pk=None):
        schedule = schedules.create_schedule(self.pipeline(), **self._input(partial=False))
        return Response(self.get_serializer(schedule).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Replace a schedule (fields left out get their defaults)",
        request=ScheduleInputSerializer,
        responses={200: ScheduleSerializer, 400: FIELD_ERRORS},
    )
    def update(self, request, *args, **kwargs):
        if kwargs.get("partial"):
            changes = self._input(partial=True)
        else:
            changes = {**schedules.DEFAULTS, **self._input(partial=False)}
        schedule = schedules.update_schedule(self.get_object(), **changes)
        return Response(self.get_serializer(schedule).data)

    @extend_schema(
        summary="Change some fields of a schedule",
        request=ScheduleInputSerializer,
        responses={200: ScheduleSerializer, 400: FIELD_ERRORS},
    )
    def partial_update(self, request, *args, **kwargs):
        return super().partial_update(request, *args, **kwargs)

    def destroy(self, request, *args, **kwargs):
        schedules.delete_schedule(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class ScheduleToolsViewSet(FieldErrorResponses, viewsets.ViewSet):
    """`/api/schedules/preview/`: check an expression without saving anything."""

    @extend_schema(
        summary="An expression in words and its next fire times, without saving",
        request=PreviewRequestSerializer,
        responses={200: PreviewSerializer, 400: FIELD_ERRORS},
    )
    @action(detail=False, methods=["post"])
    def preview(self, request):
        form = PreviewRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        return Response(schedules.preview(form.validated_data["cron"], form.validated_data["timezone"]))
