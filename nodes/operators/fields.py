"""Record-shape mappers: keep some fields, rename fields."""

from __future__ import annotations

from typing import Any

from nodes.operators.base import Mapper, object_schema
from nodes.operators.registry import register

FIELD_NAME: dict[str, Any] = {"type": "string", "minLength": 1}


@register
class SelectFields(Mapper):
    name = "select_fields"
    label = "Select fields"
    description = "Keeps only the listed fields of each record (missing ones are simply absent)."
    config_schema = object_schema(
        {"fields": {"type": "array", "items": FIELD_NAME, "minItems": 1, "uniqueItems": True}},
        required=["fields"],
        text=False,
    )

    def __init__(self, config, text_field="text"):
        super().__init__(config, text_field)
        self.fields = tuple(config["fields"])

    def map(self, record: dict[str, Any]) -> dict[str, Any]:
        return {name: record[name] for name in self.fields if name in record}


@register
class RenameFields(Mapper):
    name = "rename_fields"
    label = "Rename fields"
    description = "Renames fields ({old: new}); a record without the old field is left as it is."
    config_schema = object_schema(
        {"mapping": {"type": "object", "additionalProperties": FIELD_NAME, "minProperties": 1}},
        required=["mapping"],
        text=False,
    )

    @classmethod
    def check_config(cls, config):
        targets = list(config["mapping"].values())
        if len(set(targets)) != len(targets):
            return [("mapping", "two fields cannot be renamed to the same name")]
        return []

    def __init__(self, config, text_field="text"):
        super().__init__(config, text_field)
        self.mapping = tuple(config["mapping"].items())

    def map(self, record: dict[str, Any]) -> dict[str, Any]:
        # Read all old values first, so {"a": "b", "b": "a"} swaps.
        moved = [(new, record.pop(old)) for old, new in self.mapping if old in record]
        record.update(moved)
        return record
