"""What node configs can refer to by name: saved tasks and stored secrets.

A saved task is a named, reusable config of a Data Collection or Data Cleaning node (a
source, or an operator chain); a node's `task` field names it. A secret is a value (an API
key) a node names instead of holding it; only its ciphertext is stored and no API returns it.
"""

from django.conf import settings
from django.db import models


class SavedTask(models.Model):
    class Kind(models.TextChoices):
        COLLECTION = "collection", "Collection"
        CLEANING = "cleaning", "Cleaning"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_tasks")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    #: The node config it stands for (without `task`), checked against the node type's schema.
    config = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "name"]
        constraints = [models.UniqueConstraint(fields=["owner", "kind", "name"], name="saved_task_unique_name")]

    def __str__(self):
        return f"{self.kind} task {self.name}"


class Secret(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    #: The value, encrypted; never returned by the API, the admin or a log line.
    ciphertext = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="secret_unique_name")]

    def __str__(self):
        return f"secret {self.name}"
