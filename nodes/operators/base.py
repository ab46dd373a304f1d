"""The operator base classes: one small class per cleaning step.

An operator has a `name` (catalogue key), a `kind`, a JSON Schema for its config and a
`version` (part of a node's result-cache key: bump it when the output for the same input and
config changes). It is built once per chain from a validated config and then called on
batches of records (dicts) by `Chain`:

- **mapper**: returns the record transformed (records are changed in place; the chain owns
  them). Text mappers implement `map_text(text) -> text`.
- **filter**: returns None to keep a record, or a short drop reason (`"too_short"`). Text
  filters implement `check_text(text) -> reason | None`.
- **deduplicator**: holds bounded state and drops records it has seen (`"duplicate"`).

Text operators work on the config's `text_field` (default: the chain's, itself `"text"` by
default). A record whose text field is missing or not a string is dropped by the first text
operator that meets it, with the reason `missing_text` or `text_not_string`, never a crash.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from jsonschema import Draft202012Validator

from nodes import schemas

KINDS = ("mapper", "filter", "deduplicator")

#: Drop reasons every text operator may give.
MISSING_TEXT = "missing_text"
TEXT_NOT_STRING = "text_not_string"

TEXT_FIELD_PROPERTY: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "description": "The record field to work on; defaults to the chain's text field.",
}

Dropped = list[tuple[dict[str, Any], str]]


def object_schema(properties: dict[str, Any], required: Iterable[str] = (), text: bool = True) -> dict[str, Any]:
    """A closed config schema; text operators get the common `text_field` property."""
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {**({"text_field": TEXT_FIELD_PROPERTY} if text else {}), **properties},
    }
    if required:
        schema["required"] = list(required)
    return schema


class OperatorConfigError(ValueError):
    """A bad operator config; `field` is the full dotted path, e.g. `operators[2].config.min_length`."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Operator:
    """Base class of every operator. Subclasses set the class attributes below."""

    name: ClassVar[str]
    kind: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str] = ""
    config_schema: ClassVar[dict[str, Any]] = object_schema({}, text=False)
    #: Bump when the output for the same input and config changes (result-cache key).
    version: ClassVar[str] = "1"
    #: Whether the operator reads `text_field`.
    uses_text: ClassVar[bool] = False

    _validator: ClassVar[Draft202012Validator | None] = None

    def __init__(self, config: dict[str, Any], text_field: str = "text"):
        """Use `build()`: it validates the config and fills in defaults first."""
        self.config = config
        self.text_field = config.get("text_field") or text_field

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return schemas.defaults(cls.config_schema)

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> list[tuple[str, str]]:
        """Rules beyond the JSON Schema, as (field, message); the config has its defaults."""
        return []

    @classmethod
    def checked_config(cls, config: dict[str, Any] | None = None, *, path: str = "config") -> dict[str, Any]:
        """The config validated, with its defaults; errors name the field under `path`.
        Builds nothing, so the graph validator can check a chain without its state."""
        config = {} if config is None else config
        if cls.__dict__.get("_validator") is None:
            cls._validator = Draft202012Validator(cls.config_schema)
        assert cls._validator is not None
        error = next(iter(sorted(cls._validator.iter_errors(config), key=lambda e: list(e.absolute_path))), None)
        if error is not None:
            raise OperatorConfigError(schemas.locate(error, path), schemas.message(error))
        full = {**cls.defaults(), **config}
        for field, message in cls.check_config(full):
            raise OperatorConfigError(f"{path}.{field}", message)
        return full

    @classmethod
    def build(cls, config: dict[str, Any] | None = None, *, text_field: str = "text", path: str = "config") -> Operator:
        """An operator from a config, validated; errors name the field under `path`."""
        return cls(cls.checked_config(config, path=path), text_field=text_field)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "kind": cls.kind,
            "label": cls.label,
            "description": cls.description,
            "version": cls.version,
            "config_schema": cls.config_schema,
            "default_config": cls.defaults(),
        }

    def process_batch(self, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Dropped]:
        """(kept records, [(dropped record, reason)]). The hot path: kinds implement it once."""
        raise NotImplementedError


def text_problem(value: Any) -> str:
    return MISSING_TEXT if value is None else TEXT_NOT_STRING


class Mapper(Operator):
    """Transforms whole records: implement `map(record) -> record`."""

    kind = "mapper"

    def map(self, record: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def process_batch(self, records):
        return [self.map(record) for record in records], []


class TextMapper(Operator):
    """Transforms the text field: implement `map_text(text) -> text`."""

    kind = "mapper"
    uses_text = True

    def map_text(self, text: str) -> str:
        raise NotImplementedError

    def process_batch(self, records):
        field = self.text_field
        map_text = self.map_text
        kept = []
        dropped = []
        for record in records:
            text = record.get(field)
            if text.__class__ is str:
                record[field] = map_text(text)
                kept.append(record)
            else:
                dropped.append((record, text_problem(text)))
        return kept, dropped


class Filter(Operator):
    """Keeps or drops whole records: implement `check(record) -> reason | None`."""

    kind = "filter"

    def check(self, record: dict[str, Any]) -> str | None:
        raise NotImplementedError

    def process_batch(self, records):
        check = self.check
        kept = []
        dropped = []
        for record in records:
            reason = check(record)
            if reason is None:
                kept.append(record)
            else:
                dropped.append((record, reason))
        return kept, dropped


class TextFilter(Operator):
    """Keeps or drops records by their text: implement `check_text(text) -> reason | None`."""

    kind = "filter"
    uses_text = True

    def check_text(self, text: str) -> str | None:
        raise NotImplementedError

    def process_batch(self, records):
        field = self.text_field
        check_text = self.check_text
        kept = []
        dropped = []
        for record in records:
            text = record.get(field)
            reason = check_text(text) if text.__class__ is str else text_problem(text)
            if reason is None:
                kept.append(record)
            else:
                dropped.append((record, reason))
        return kept, dropped


class Deduplicator(Operator):
    """Drops records whose key was seen before. State must stay bounded (see `dedup.py`).

    `key(record)` is a pure function of the record, so a sharded run can route records by it
    (see `chain.py`); it returns a reason string instead when the record has no usable key.
    """

    kind = "deduplicator"
    uses_text = True

    DUPLICATE = "duplicate"
