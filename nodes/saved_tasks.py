"""Saved tasks: named, reusable configs of Data Collection and Data Cleaning nodes.

Every write goes through here (API, admin, tests). A saved task's config is checked like
the node config it stands for (its node type's JSON Schema and `validate_config`), with
errors naming the field as `config.<field>`. A node refers to one with `task: <name>`;
`expand_config` puts the saved config under the node's other keys when the node runs.

A saved config holds no `task` (no chains of tasks) and no `{{ }}` templates: the engine
renders a node's templates before the node looks its task up, so they would stay unrendered.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from jsonschema import Draft202012Validator

from nodes import registry, schemas
from nodes.execution import NodeFailed
from nodes.expressions import has_template
from nodes.models import SavedTask

#: The node type whose config a saved task of each kind holds.
NODE_TYPES = {SavedTask.Kind.COLLECTION: "data_collection", SavedTask.Kind.CLEANING: "data_cleaning"}
NAME_MAX_LENGTH = SavedTask._meta.get_field("name").max_length


class SavedTaskInvalid(Exception):
    """Bad input; `errors` is a list of {"field", "message"}."""

    def __init__(self, errors: list[dict[str, str]]):
        super().__init__("; ".join(f"{error['field']}: {error['message']}" for error in errors))
        self.errors = errors


def _invalid(field: str, message: str) -> SavedTaskInvalid:
    return SavedTaskInvalid([{"field": field, "message": message}])


def visible_saved_tasks(user) -> QuerySet[SavedTask]:
    """A user's own saved tasks: node configs name tasks of their pipeline's owner only."""
    return SavedTask.objects.filter(owner=user)


# --- checks -------------------------------------------------------------------------


def check_kind(kind: Any) -> str:
    if not isinstance(kind, str) or kind not in NODE_TYPES:
        raise _invalid("kind", f"must be one of {', '.join(NODE_TYPES)}")
    return str(kind)


def check_name(owner, kind: str, name: Any, *, exclude: int | None = None) -> str:
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise _invalid("name", "must not be empty")
    if len(name) > NAME_MAX_LENGTH:
        raise _invalid("name", f"at most {NAME_MAX_LENGTH} characters")
    if SavedTask.objects.filter(owner=owner, kind=kind, name=name).exclude(pk=exclude).exists():
        raise _invalid("name", f"you already have a saved {kind} task named {name!r}")
    return name


def config_errors(kind: str, config: Any, prefix: str = "config") -> list[dict[str, str]]:
    """Problems of `config` as the config of the kind's node type, each naming its field."""
    if not isinstance(config, dict):
        return [{"field": prefix, "message": "must be a JSON object"}]
    if "task" in config:
        return [{"field": f"{prefix}.task", "message": "a saved task cannot name another saved task"}]
    node_type = registry.get(NODE_TYPES[kind])
    errors = [
        {"field": schemas.locate(error, prefix), "message": schemas.message(error)}
        for error in Draft202012Validator(node_type.config_schema).iter_errors(config)
    ]
    errors += [
        {"field": schemas.format_path(prefix, path), "message": "templates ({{ }}) are not rendered in a saved task"}
        for path in _template_paths(config, [])
    ]
    if errors:
        return errors
    return [
        {"field": schemas.format_path(prefix, [problem.field]), "message": problem.message}
        for problem in node_type.validate_config(config)
    ]


def _template_paths(value: Any, path: list[Any]):
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _template_paths(item, [*path, name])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _template_paths(item, [*path, index])
    elif has_template(value):
        yield path


def check_config(kind: str, config: Any) -> dict[str, Any]:
    errors = config_errors(kind, config)
    if errors:
        raise SavedTaskInvalid(errors)
    return config


# --- actions ------------------------------------------------------------------------


def create_saved_task(*, owner, kind: str, name: str, config: dict[str, Any], description: str = "") -> SavedTask:
    kind = check_kind(kind)
    name = check_name(owner, kind, name)
    config = check_config(kind, config)
    try:
        with transaction.atomic():
            return SavedTask.objects.create(owner=owner, kind=kind, name=name, description=description, config=config)
    except IntegrityError:  # a concurrent create with the same name
        raise _invalid("name", f"you already have a saved {kind} task named {name!r}") from None


def update_saved_task(
    task: SavedTask,
    *,
    name: str | None = None,
    description: str | None = None,
    config: dict[str, Any] | None = None,
    kind: str | None = None,
) -> SavedTask:
    """Change a saved task. Its kind stays: a config is checked against the kind's node type."""
    if kind is not None and kind != task.kind:
        raise _invalid("kind", f"a saved task keeps its kind ({task.kind}); create a new {kind} task instead")
    if name is not None:
        task.name = check_name(task.owner, task.kind, name, exclude=task.pk)
    if description is not None:
        task.description = description
    if config is not None:
        task.config = check_config(task.kind, config)
    try:
        with transaction.atomic():
            task.save()
    except IntegrityError:
        raise _invalid("name", f"you already have a saved {task.kind} task named {task.name!r}") from None
    return task


def delete_saved_task(task: SavedTask) -> None:
    """Nodes that name it fail with `task: no saved … task named …` on their next run."""
    task.delete()


# --- use in a node ------------------------------------------------------------------


def expand_config(owner_id: int, kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """`config` with `task: <name>` replaced by that saved task's config, the node's own keys
    on top. A config without `task` comes back as it is."""
    if "task" not in config:
        return config
    name = config["task"]
    task = SavedTask.objects.filter(owner_id=owner_id, kind=kind, name=name).first()
    if task is None:
        raise NodeFailed(f"task: no saved {kind} task named {name!r}")
    merged = {**task.config, **{key: value for key, value in config.items() if key != "task"}}
    # The saved config was valid when saved; the node's keys, or a newer schema, may not fit it.
    errors = config_errors(kind, merged, prefix="")
    if errors:
        raise NodeFailed(f"{errors[0]['field']}: {errors[0]['message']} (with saved {kind} task {name!r})")
    return merged
