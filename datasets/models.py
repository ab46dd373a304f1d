"""Datasets and their immutable versions.

A version's records live in the record store (`datasets.records`): JSON Lines parts in
storage, described by the version's `manifest`. The row is written once, after its
parts are complete, and never updated; `stats` is a cache filled on first request.
"""

from django.conf import settings
from django.db import models


class Dataset(models.Model):
    name = models.CharField(max_length=200)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="datasets")
    description = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="dataset_name_unique_per_owner")]

    def __str__(self):
        return self.name


class VersionImmutable(Exception):
    pass


class DatasetVersion(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    #: 1, 2, 3 … within the dataset.
    number = models.PositiveIntegerField()
    #: The record store manifest: parts, count, fields and their types, bytes, checksum, samples.
    manifest = models.JSONField()
    #: Copied from the manifest, for listing and sorting without reading JSON.
    record_count = models.BigIntegerField(default=0)
    size_bytes = models.BigIntegerField(default=0)
    #: Where the records came from, e.g. "upload corpus.jsonl (jsonl)" or "run 42, node publish".
    source = models.CharField(max_length=500, blank=True)
    produced_by_run = models.ForeignKey(
        "pipelines.Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="dataset_versions"
    )
    #: The node run that wrote it: a later attempt of that node run (its worker was lost after
    #: writing) keeps this version instead of writing a second one.
    produced_by_node_run = models.ForeignKey(
        "pipelines.NodeRun", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    #: Computed once from the records on first request (see datasets.services.stats).
    stats = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["dataset", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "number"], name="dataset_version_number_unique"),
            models.CheckConstraint(condition=models.Q(number__gte=1), name="dataset_version_number_positive"),
        ]

    def __str__(self):
        return f"{self.dataset} v{self.number}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise VersionImmutable("dataset versions are immutable; import a new version instead")
        super().save(*args, **kwargs)
