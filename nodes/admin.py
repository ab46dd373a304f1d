"""Admin for saved tasks and secrets."""

from django.contrib import admin  # noqa: F401

# --- saved tasks ---

# --- secrets ---
