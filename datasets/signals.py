"""A deleted version takes its record files with it, however it was deleted (API, admin,
a cascading user or dataset delete) — once the deletion has committed."""

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from datasets import records
from datasets.models import DatasetVersion


@receiver(post_delete, sender=DatasetVersion, dispatch_uid="datasets.delete_version_parts")
def delete_version_parts(sender, instance: DatasetVersion, **kwargs):
    manifest = instance.manifest
    transaction.on_commit(lambda: records.delete_parts(manifest))
