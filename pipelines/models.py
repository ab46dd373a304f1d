"""The pipeline graph and its versions.

django-simple-history on Pipeline, Node and Edge is the version store: `save_graph` writes
every changed row of version N with one shared history date (`_history_date`), so
`history.as_of(version.created_at)` rebuilds version N exactly. `PipelineVersion` only
holds the metadata of each version (number, message, author, time), never a copy of the
graph. Every write goes through `pipelines.services`.
"""

from django.conf import settings
from django.db import models
from django.db.models.signals import post_delete
from django.dispatch import receiver
from simple_history.models import HistoricalRecords


class VersionStampedHistory(models.Model):
    """Extra column on every historical row: the pipeline version that wrote it."""

    pipeline_version = models.PositiveIntegerField(null=True, blank=True, db_index=True)

    class Meta:
        abstract = True


class Pipeline(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="pipelines")
    #: Parameter definitions: [{"name", "type", "required", "default", "description", "choices"?}].
    parameters = models.JSONField(default=list, blank=True)
    #: Number of the latest saved version (0 before the first save).
    version = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(bases=[VersionStampedHistory], excluded_fields=["updated_at"])

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["owner", "-updated_at"])]

    def __str__(self):
        return self.name


class Node(models.Model):
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="nodes")
    #: Stable within the pipeline; expressions refer to it (`nodes.<key>.output`).
    key = models.CharField(max_length=64)
    type = models.CharField(max_length=100)
    label = models.CharField(max_length=200, blank=True)
    config = models.JSONField(default=dict, blank=True)
    position_x = models.FloatField(default=0)
    position_y = models.FloatField(default=0)
    #: The Loop container this node belongs to, if any.
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    notes = models.TextField(blank=True)
    #: Execution settings: retries, backoff, timeout, cache, continue_on_failure, join.
    settings = models.JSONField(default=dict, blank=True)

    history = HistoricalRecords(bases=[VersionStampedHistory])

    class Meta:
        ordering = ["key"]
        constraints = [models.UniqueConstraint(fields=["pipeline", "key"], name="node_key_unique_in_pipeline")]

    def __str__(self):
        return f"{self.key} ({self.type})"


class Edge(models.Model):
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="edges")
    source = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="outgoing")
    source_handle = models.CharField(max_length=50, default="out")
    target = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="incoming")

    history = HistoricalRecords(bases=[VersionStampedHistory])

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "source_handle", "target"], name="edge_unique"),
        ]

    def __str__(self):
        try:
            return f"{self.source.key}.{self.source_handle} → {self.target.key}"
        except Node.DoesNotExist:  # a historical edge (admin history pages) outlives its nodes
            return f"node {self.source_id}.{self.source_handle} → node {self.target_id}"


class PipelineVersion(models.Model):
    """Metadata of one saved version; the graph itself is in the history tables."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    message = models.CharField(max_length=500, blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    #: The history date shared by every row this version wrote.
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["pipeline", "number"], name="version_number_unique")]

    def __str__(self):
        return f"{self.pipeline} v{self.number}"


class Template(models.Model):
    """A reusable pipeline document. Built-in templates have no owner and are visible to all."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, blank=True, help_text="Set on built-in templates only.")
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="pipeline_templates"
    )
    document = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["slug"], condition=models.Q(owner__isnull=True), name="builtin_template_slug_unique"
            )
        ]

    def __str__(self):
        return self.name

    @property
    def built_in(self) -> bool:
        return self.owner_id is None


# --- runs ---------------------------------------------------------------------------


class Run(models.Model):
    """One execution of a pipeline version. The spec is frozen: later edits don't affect it."""

    class Trigger(models.TextChoices):
        MANUAL = "manual"
        API = "api"
        CLI = "cli"
        SCHEDULE = "schedule"
        SUBPIPELINE = "subpipeline"

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="runs")
    version = models.PositiveIntegerField()
    #: The validated, canonical document of that version.
    spec = models.JSONField()
    #: Parameter values after defaults were applied and types checked.
    params = models.JSONField(default=dict)
    trigger = models.CharField(max_length=20, choices=Trigger.choices, default=Trigger.MANUAL)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=20, default="pending", db_index=True)
    error = models.TextField(blank=True)
    #: A child run of a Sub-pipeline node.
    parent_node_run = models.ForeignKey(
        "NodeRun", null=True, blank=True, on_delete=models.CASCADE, related_name="child_runs"
    )
    #: A re-run reuses the outputs of this run's nodes upstream of `rerun_from`.
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns")
    rerun_from = models.CharField(max_length=64, blank=True)
    #: The schedule that started this run (trigger "schedule").
    schedule = models.ForeignKey("Schedule", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["pipeline", "-id"])]

    def __str__(self):
        return f"run {self.pk} of {self.pipeline_id} v{self.version} ({self.state})"


class NodeRun(models.Model):
    """One node of a run, in one loop iteration. Every transition is a conditional update."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="node_runs")
    node_key = models.CharField(max_length=64)
    #: "" at the top level; "loop:2" in iteration 2 of Loop `loop`; nested: "outer:0/inner:1".
    iteration = models.CharField(max_length=500, blank=True, default="")
    attempt = models.PositiveIntegerField(default=1)
    state = models.CharField(max_length=20, default="pending")
    progress = models.FloatField(default=0)
    records_in = models.BigIntegerField(null=True, blank=True)
    records_out = models.BigIntegerField(null=True, blank=True)
    #: The output summary that downstream nodes and expressions see.
    output = models.JSONField(null=True, blank=True)
    #: Source handles whose edges are live after this node finished (e.g. ["true"]).
    handles = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    #: Loop: how many iterations have completed.
    iterations_done = models.PositiveIntegerField(default=0)
    #: A sharded data node (waiting while its shards run): the stage its shards are in.
    shard_stage = models.PositiveSmallIntegerField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    #: Which worker ran the latest attempt: Celery's node name and the pool process id.
    worker = models.CharField(max_length=255, blank=True, default="")
    #: Wait: when the timer fires.
    resume_at = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "node_key", "iteration"], name="node_run_unique"),
        ]
        indexes = [
            models.Index(fields=["state", "heartbeat_at"], name="node_run_sweep_running"),
            models.Index(fields=["state", "resume_at"], name="node_run_sweep_waiting"),
        ]

    def __str__(self):
        where = f"[{self.iteration}]" if self.iteration else ""
        return f"{self.node_key}{where} #{self.attempt} ({self.state})"


class NodeShard(models.Model):
    """One slice of a sharded data node's work, executed as its own Celery task.

    A stage's shards run in parallel; when the last one finishes, the next stage starts (a
    deduplicating chain routes records by key between stages) or the node's output is merged.
    Shards belong to one attempt of their node run; like node runs, every transition is a
    conditional update, so a duplicate delivery does nothing.
    """

    node_run = models.ForeignKey(NodeRun, on_delete=models.CASCADE, related_name="shards")
    node_attempt = models.PositiveIntegerField()
    stage = models.PositiveSmallIntegerField(default=0)
    index = models.PositiveIntegerField()
    #: Shards in this stage (the node's progress and logs say "shard 2/4").
    of = models.PositiveIntegerField()
    attempt = models.PositiveIntegerField(default=1)
    state = models.CharField(max_length=20, default="pending")
    #: The records this shard reads: [{"parts": [...], "count": n}, ...] (part names, never records).
    input = models.JSONField()
    output = models.JSONField(null=True, blank=True)
    progress = models.FloatField(default=0)
    records_in = models.BigIntegerField(default=0)
    records_out = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["node_run", "node_attempt", "stage", "index"], name="node_shard_unique"),
        ]
        indexes = [models.Index(fields=["state", "heartbeat_at"], name="node_shard_sweep")]

    def __str__(self):
        return f"shard {self.index + 1}/{self.of} of stage {self.stage} ({self.state})"


class NodeRunLog(models.Model):
    node_run = models.ForeignKey(NodeRun, on_delete=models.CASCADE, related_name="logs")
    level = models.CharField(max_length=10, default="info")
    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["node_run", "id"])]

    def __str__(self):
        return f"{self.level}: {self.message[:80]}"


class NodeResultCache(models.Model):
    """Outputs of nodes that opted into caching, by what determines them (see engine/cache.py)."""

    key = models.CharField(max_length=64, unique=True)
    node_type = models.CharField(max_length=100)
    output = models.JSONField()
    handles = models.JSONField()
    records_in = models.BigIntegerField(null=True, blank=True)
    records_out = models.BigIntegerField(null=True, blank=True)
    source = models.ForeignKey(NodeRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.node_type} {self.key[:12]}"


# --- schedules ----------------------------------------------------------------------


class Schedule(models.Model):
    """Runs a pipeline on a cron expression in a time zone. Beat fires it through the
    django-celery-beat `PeriodicTask` that `pipelines.schedules` keeps in sync with this row."""

    class Overlap(models.TextChoices):
        SKIP = "skip", "skip the fire while a run of the pipeline is active"
        QUEUE = "queue", "hold one fire until the active run ends"
        ALLOW = "allow", "start runs in parallel"

    class Outcome(models.TextChoices):
        STARTED = "started"  # a run started
        SKIPPED = "skipped"  # overlap: a run of the pipeline was active (or a fire was already queued)
        QUEUED = "queued"  # overlap: held until the active run ends
        MISSED = "missed"  # sent long after its time (beat was down) and catch_up is off
        FAILED = "failed"  # the run could not start (parameters, graph, version)

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="schedules")
    #: As written: Quartz (6-7 fields) or Unix (5 fields); see pipelines/cron.py.
    cron = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA name, e.g. Europe/Paris.")
    #: Parameter values as given; defaults are applied when a run starts.
    params = models.JSONField(default=dict, blank=True)
    overlap = models.CharField(max_length=10, choices=Overlap.choices, default=Overlap.SKIP)
    #: After beat was down: start one run for the latest missed fire (otherwise none).
    catch_up = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    start_at = models.DateTimeField(null=True, blank=True, help_text="No fire before this moment.")
    end_at = models.DateTimeField(null=True, blank=True, help_text="No fire after this moment.")
    #: The pipeline version to run; null = the latest version when the schedule fires.
    version = models.PositiveIntegerField(null=True, blank=True)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="datamate_schedule",
    )
    #: Fire times up to here are done with (or predate the last change), so a duplicate or
    #: replayed message never starts a second run, and catch_up knows what was missed.
    handled_through = models.DateTimeField(editable=False)
    #: `queue` policy: the fire time held until the pipeline's active run ends (at most one).
    pending_fire_at = models.DateTimeField(null=True, blank=True, editable=False, db_index=True)
    last_fire_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_outcome = models.CharField(max_length=10, choices=Outcome.choices, blank=True, editable=False)
    last_message = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.pipeline} @ {self.cron} ({self.timezone})"


@receiver(post_delete, sender=Schedule)
def _delete_beat_entry(sender, instance: Schedule, **kwargs):
    """However a schedule is deleted (API, admin, its pipeline), its beat entry goes too.
    The crontab row is the schedule's own; deleting it cascades to the PeriodicTask."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    crontab_ids = PeriodicTask.objects.filter(pk=instance.periodic_task_id).values("crontab_id")
    CrontabSchedule.objects.filter(pk__in=crontab_ids).delete()
    PeriodicTask.objects.filter(pk=instance.periodic_task_id).delete()
