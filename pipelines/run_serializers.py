"""Serializers of the runs API: runs, node runs, log lines, and the request bodies."""

from rest_framework import serializers

from pipelines.models import NodeRun, NodeRunLog, Run

MAX_TEST_TIMEOUT_SECONDS = 600
DEFAULT_TEST_WAIT_SECONDS = 10.0
MAX_TEST_WAIT_SECONDS = 60.0


class NodeRunSerializer(serializers.ModelSerializer):
    key = serializers.CharField(source="node_key", read_only=True)
    duration_ms = serializers.SerializerMethodField(help_text="Wall time from start to finish; null until both.")
    # Typed, so the schema says "object or null" (an untyped nullable JSON field is an invalid oneOf).
    output = serializers.DictField(read_only=True, allow_null=True, help_text="Null until the node finished.")
    handles = serializers.ListField(
        child=serializers.CharField(), read_only=True, allow_null=True, help_text="Source handles that carry on."
    )

    class Meta:
        model = NodeRun
        fields = [
            "id",
            "key",
            "iteration",
            "state",
            "attempt",
            "worker",
            "progress",
            "records_in",
            "records_out",
            "output",
            "handles",
            "error",
            "iterations_done",
            "ready_at",
            "started_at",
            "finished_at",
            "resume_at",
            "duration_ms",
        ]
        read_only_fields = fields

    def get_duration_ms(self, node_run) -> int | None:
        if node_run.started_at and node_run.finished_at:
            return max(0, round((node_run.finished_at - node_run.started_at).total_seconds() * 1000))
        return None


class RunSerializer(serializers.ModelSerializer):
    pipeline_name = serializers.CharField(source="pipeline.name", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Run
        fields = [
            "id",
            "pipeline",
            "pipeline_name",
            "version",
            "state",
            "error",
            "params",
            "trigger",
            "schedule",
            "created_by",
            "parent_node_run",
            "rerun_of",
            "rerun_from",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class RunDetailSerializer(RunSerializer):
    node_runs = NodeRunSerializer(many=True, read_only=True)

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "node_runs"]
        read_only_fields = fields


class RunLogSerializer(serializers.ModelSerializer):
    node_key = serializers.CharField(source="node_run.node_key", read_only=True)
    iteration = serializers.CharField(source="node_run.iteration", read_only=True)
    attempt = serializers.IntegerField(source="node_run.attempt", read_only=True)

    class Meta:
        model = NodeRunLog
        fields = ["id", "node_run", "node_key", "iteration", "attempt", "level", "message", "created_at"]
        read_only_fields = fields


class RunLogPageSerializer(serializers.Serializer):
    results = RunLogSerializer(many=True)
    has_more = serializers.BooleanField(help_text="More lines follow: ask again with after=next_after.")
    next_after = serializers.IntegerField(allow_null=True, help_text="Id of the last line returned.")


def _object(value):
    if not isinstance(value, dict):
        raise serializers.ValidationError("must be a JSON object")
    return value


class StartRunSerializer(serializers.Serializer):
    params = serializers.JSONField(required=False, default=dict, help_text="Parameter values by name.")
    version = serializers.IntegerField(required=False, min_value=1, help_text="Default: the latest version.")

    def validate_params(self, value):
        return _object(value)


class RerunSerializer(serializers.Serializer):
    from_node = serializers.CharField(
        required=False,
        max_length=64,
        help_text="Re-execute this node and everything downstream. Default: the failed nodes.",
    )
    params = serializers.JSONField(required=False, help_text="Overrides of the original run's parameter values.")

    def validate_params(self, value):
        return _object(value)


class NodeTestRequestSerializer(serializers.Serializer):
    inputs = serializers.JSONField(
        required=False,
        help_text="Upstream outputs by node key. Default: the upstream outputs of the latest finished run.",
    )
    params = serializers.JSONField(required=False, help_text="Parameter values; defaults are applied.")
    config = serializers.JSONField(required=False, help_text="Use this config instead of the saved one.")
    loop = serializers.JSONField(
        required=False, help_text="For a node inside a Loop: the `loop` variables (index, item, previous)."
    )
    timeout = serializers.FloatField(
        required=False,
        default=30.0,
        min_value=0.1,
        max_value=MAX_TEST_TIMEOUT_SECONDS,
        help_text="Seconds to wait for a worker and for the node.",
    )
    wait = serializers.FloatField(
        required=False,
        default=DEFAULT_TEST_WAIT_SECONDS,
        min_value=0,
        max_value=MAX_TEST_WAIT_SECONDS,
        help_text="Seconds this request waits for the result; a test still running then answers 202 "
        "with a `result_url` to fetch it from.",
    )

    def validate_params(self, value):
        return _object(value)

    def validate_config(self, value):
        return _object(value)

    def validate_loop(self, value):
        return _object(value)

    def validate_inputs(self, value):
        _object(value)
        for key, output in value.items():
            if not isinstance(output, dict):
                raise serializers.ValidationError(f"{key}: an upstream output must be a JSON object")
        return value


class NodeTestPendingSerializer(serializers.Serializer):
    request_id = serializers.CharField()
    state = serializers.CharField(help_text="pending")
    result_url = serializers.CharField(help_text="GET it until it answers 200 (or 504).")


class NodeTestResultSerializer(serializers.Serializer):
    output = serializers.DictField(allow_null=True)
    handles = serializers.ListField(child=serializers.CharField(), allow_null=True)
    records_in = serializers.IntegerField(allow_null=True)
    records_out = serializers.IntegerField(allow_null=True)
    logs = serializers.ListField(child=serializers.DictField())
    error = serializers.CharField(allow_null=True)
    duration_ms = serializers.IntegerField()
    inputs_from_run = serializers.IntegerField(
        allow_null=True, help_text="The run whose outputs were used as inputs, when none were given."
    )
