"""Every change to pipelines, versions and templates goes through these functions.

The API, the admin, the management commands and (later) the designer call them, so they
all validate, version and refuse bad input the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
import json
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from pipelines import documents
from pipelines.graph_validation import GraphInvalid, validate_document
from pipelines.models import Edge, Node, Pipeline, PipelineVersion, Template

BUILTIN_TEMPLATES_DIR = Path(__file__).parent / "builtin_templates"


class VersionConflict(Exception):
    """The graph was saved by someone else since the caller loaded it."""

    def __init__(self, current: int):
        super().__init__(f"the pipeline is at version {current}; reload it before saving")
        self.current = current


class NotFound(Exception):
    pass


# --- visibility ---------------------------------------------------------------------


def visible_pipelines(user) -> QuerySet[Pipeline]:
    """A pipeline is visible to its owner and to staff."""
    queryset = Pipeline.objects.select_related("owner")
    return queryset if user.is_staff else queryset.filter(owner=user)


def visible_templates(user) -> QuerySet[Template]:
    """Built-in templates are visible to everyone; the others to their owner and staff."""
    queryset = Template.objects.all()
    return queryset if user.is_staff else queryset.filter(Q(owner__isnull=True) | Q(owner=user))


# --- documents ----------------------------------------------------------------------


def _document(pipeline: Pipeline, nodes: list[Node], edges: list[Edge]) -> dict[str, Any]:
    key_by_id = {node.pk: node.key for node in nodes}
    return documents.canonical(
        {
            "name": pipeline.name,
            "description": pipeline.description,
            "parameters": pipeline.parameters,
            "nodes": [
                {
                    "key": node.key,
                    "type": node.type,
                    "label": node.label,
                    "config": node.config,
                    "position": {"x": node.position_x, "y": node.position_y},
                    "parent": key_by_id.get(node.parent_id),
                    "notes": node.notes,
                    "settings": node.settings,
                }
                for node in nodes
            ],
            "edges": [
                {"source": key_by_id[e.source_id], "source_handle": e.source_handle, "target": key_by_id[e.target_id]}
                for e in edges
            ],
        }
    )


def current_document(pipeline: Pipeline) -> dict[str, Any]:
    return _document(pipeline, list(pipeline.nodes.all()), list(pipeline.edges.all()))


@dataclass
class VersionSnapshot:
    """Version N rebuilt from history: the pipeline, node and edge instances as they were."""

    version: PipelineVersion
    pipeline: Pipeline
    nodes: list[Node]
    edges: list[Edge]

    @property
    def document(self) -> dict[str, Any]:
        return _document(self.pipeline, self.nodes, self.edges)


def get_version(pipeline: Pipeline, number: int) -> PipelineVersion:
    try:
        return pipeline.versions.select_related("author").get(number=number)
    except PipelineVersion.DoesNotExist:
        raise NotFound(f"version {number} of pipeline {pipeline.pk} does not exist") from None


def version_snapshot(pipeline: Pipeline, number: int) -> VersionSnapshot:
    version = get_version(pipeline, number)
    moment = version.created_at
    return VersionSnapshot(
        version=version,
        pipeline=pipeline.history.as_of(moment),
        nodes=list(Node.history.as_of(moment).filter(pipeline_id=pipeline.pk)),
        edges=list(Edge.history.as_of(moment).filter(pipeline_id=pipeline.pk)),
    )


def version_document(pipeline: Pipeline, number: int) -> dict[str, Any]:
    return version_snapshot(pipeline, number).document


# --- saving -------------------------------------------------------------------------


def _history_moment(pipeline: Pipeline) -> datetime:
    """One history date for every row of the new version, later than the previous version's."""
    moment = timezone.now()
    latest = pipeline.versions.order_by("-number").values_list("created_at", flat=True).first()
    if latest is not None and moment <= latest:
        moment = latest + timedelta(microseconds=1)
    return moment


def _depth(key: str, parents: dict[str, str | None]) -> int:
    depth = 0
    while parents.get(key) is not None:
        key = parents[key]
        depth += 1
    return depth


@transaction.atomic
def save_graph(
    pipeline: Pipeline,
    document: Any,
    *,
    author=None,
    message: str = "",
    base_version: int | None = None,
) -> PipelineVersion:
    """Validate `document`, make the pipeline's graph equal to it, and write version N+1.

    Only rows that changed are written, each with the version's shared history date, so
    `version_snapshot` can rebuild any version. Saving an unchanged document writes nothing
    and returns the current version. Raises GraphInvalid or VersionConflict.
    """
    errors = validate_document(document)
    if errors:
        raise GraphInvalid(errors)
    doc = documents.canonical(document)
    caller_pipeline, pipeline = pipeline, Pipeline.objects.select_for_update().get(pk=pipeline.pk)
    if base_version is not None and base_version != pipeline.version:
        raise VersionConflict(pipeline.version)
    if pipeline.version and doc == current_document(pipeline):
        return pipeline.versions.get(number=pipeline.version)

    number = pipeline.version + 1
    moment = _history_moment(pipeline)

    def stamped(obj):
        obj._history_date = moment
        obj._history_user = author
        obj._change_reason = message
        obj._pipeline_version = number
        return obj

    pipeline.name = doc["name"]
    pipeline.description = doc["description"]
    pipeline.parameters = doc["parameters"]
    pipeline.version = number
    stamped(pipeline).save()

    existing_nodes = {node.key: node for node in pipeline.nodes.all()}
    existing_edges = {
        (edge.source.key, edge.source_handle, edge.target.key): edge
        for edge in pipeline.edges.select_related("source", "target")
    }
    wanted_edges = {(e["source"], e["source_handle"], e["target"]) for e in doc["edges"]}
    wanted_keys = {node["key"] for node in doc["nodes"]}

    # Edges go first, explicitly, so their deletion rows carry this version's date.
    for identity, edge in existing_edges.items():
        if identity not in wanted_edges:
            stamped(edge).delete()

    parents = {node["key"]: node["parent"] for node in doc["nodes"]}
    saved: dict[str, Node] = {}
    for spec in sorted(doc["nodes"], key=lambda n: _depth(n["key"], parents)):  # containers first
        node = existing_nodes.get(spec["key"]) or Node(pipeline=pipeline, key=spec["key"])
        values = {
            "type": spec["type"],
            "label": spec["label"],
            "config": spec["config"],
            "position_x": float(spec["position"]["x"]),
            "position_y": float(spec["position"]["y"]),
            "parent_id": saved[spec["parent"]].pk if spec["parent"] else None,
            "notes": spec["notes"],
            "settings": spec["settings"],
        }
        if node.pk is None or any(getattr(node, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(node, name, value)
            stamped(node).save()
        saved[spec["key"]] = node

    removed = [node for key, node in existing_nodes.items() if key not in wanted_keys]
    key_by_pk = {node.pk: node.key for node in existing_nodes.values()}
    old_parents = {node.key: key_by_pk.get(node.parent_id) for node in removed}
    for node in sorted(removed, key=lambda n: -_depth(n.key, old_parents)):  # children first
        stamped(node).delete()

    for source, handle, target in sorted(wanted_edges - existing_edges.keys()):
        stamped(Edge(pipeline=pipeline, source=saved[source], source_handle=handle, target=saved[target])).save()

    version = PipelineVersion.objects.create(
        pipeline=pipeline, number=number, message=message[:500], author=author, created_at=moment
    )
    caller_pipeline.refresh_from_db()
    return version


def create_pipeline(*, owner, name: str, description: str = "", author=None) -> Pipeline:
    """A new, empty pipeline at version 1."""
    document = {"name": name, "description": description}
    return import_pipeline(owner=owner, document=document, author=author, message="Created")


@transaction.atomic
def import_pipeline(
    *, owner, document: Any, author=None, message: str = "Imported", name: str | None = None
) -> Pipeline:
    """Create a pipeline from a document; its content becomes version 1. All or nothing."""
    if name is not None and isinstance(document, dict):
        document = {**document, "name": name}
    errors = validate_document(document)
    if errors:
        raise GraphInvalid(errors)
    pipeline = Pipeline(owner=owner, name=document["name"])
    pipeline.skip_history_when_saving = True  # save_graph writes its first history row, as version 1
    pipeline.save()
    del pipeline.skip_history_when_saving
    save_graph(pipeline, document, author=author or owner, message=message)
    return pipeline


def update_details(
    pipeline: Pipeline, *, author, name: str | None = None, description: str | None = None
) -> PipelineVersion:
    """Rename or re-describe: part of the document, so it is a new version like any edit."""
    document = current_document(pipeline)
    if name is not None:
        document["name"] = name
    if description is not None:
        document["description"] = description
    return save_graph(pipeline, document, author=author, message="Edited name and description")


def change_owner(pipeline: Pipeline, owner) -> None:
    """Hand a pipeline to another user. Not part of the document, so no new version."""
    pipeline.owner = owner
    pipeline._pipeline_version = pipeline.version
    pipeline.save(update_fields=["owner", "updated_at"])


def restore_version(pipeline: Pipeline, number: int, *, author) -> PipelineVersion:
    """Restoring writes a new version whose content equals version `number`."""
    document = version_document(pipeline, number)
    return save_graph(pipeline, document, author=author, message=f"Restored version {number}")


def export_document(pipeline: Pipeline, number: int | None = None) -> dict[str, Any]:
    return current_document(pipeline) if number is None else version_document(pipeline, number)


# --- diff ---------------------------------------------------------------------------


def _json_changes(old: Any, new: Any, path: str) -> list[dict[str, Any]]:
    """Field-level changes between two JSON values, as dotted paths."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for name in sorted(old.keys() | new.keys()):
            child = f"{path}.{name}" if path else name
            if name not in new:
                changes.append({"field": child, "old": old[name], "new": None, "change": "removed"})
            elif name not in old:
                changes.append({"field": child, "old": None, "new": new[name], "change": "added"})
            else:
                changes += _json_changes(old[name], new[name], child)
        return changes
    if old != new:
        return [{"field": path, "old": old, "new": new, "change": "changed"}]
    return []


_NODE_DIFF_FIELDS = ["type", "label", "config", "position_x", "position_y", "parent", "notes", "settings"]


def diff_versions(pipeline: Pipeline, number: int, against: int) -> dict[str, Any]:
    """What changed from version `against` to version `number`.

    Nodes are matched by key. Field changes come from simple-history's `diff_against`;
    JSON fields (config, settings) are broken down to the changed paths inside them.
    """
    new, old = version_snapshot(pipeline, number), version_snapshot(pipeline, against)
    new_doc, old_doc = new.document, old.document
    new_nodes = {n.key: n for n in new.nodes}
    old_nodes = {n.key: n for n in old.nodes}
    new_keys = {n.pk: n.key for n in new.nodes}
    old_keys = {n.pk: n.key for n in old.nodes}

    changed_nodes = []
    for key in sorted(new_nodes.keys() & old_nodes.keys()):
        delta = new_nodes[key]._history.diff_against(old_nodes[key]._history, included_fields=_NODE_DIFF_FIELDS)
        fields = []
        for change in delta.changes:
            if change.field in ("config", "settings"):
                fields += _json_changes(change.old or {}, change.new or {}, change.field)
            elif change.field == "parent":
                old_parent, new_parent = old_keys.get(change.old), new_keys.get(change.new)
                if old_parent != new_parent:
                    fields.append({"field": "parent", "old": old_parent, "new": new_parent, "change": "changed"})
            else:
                fields.append({"field": change.field, "old": change.old, "new": change.new, "change": "changed"})
        if fields:
            changed_nodes.append({"key": key, "changes": fields})

    def edge_set(doc):
        return {(e["source"], e["source_handle"], e["target"]) for e in doc["edges"]}

    def edge_list(edges):
        return [{"source": s, "source_handle": h, "target": t} for s, h, t in sorted(edges)]

    pipeline_changes = [
        change
        for field in ("name", "description", "parameters")
        for change in _json_changes(old_doc[field], new_doc[field], field)
    ]
    new_by_key = {n["key"]: n for n in new_doc["nodes"]}
    old_by_key = {n["key"]: n for n in old_doc["nodes"]}
    return {
        "from_version": against,
        "to_version": number,
        "pipeline": pipeline_changes,
        "nodes": {
            "added": [new_by_key[k] for k in sorted(new_nodes.keys() - old_nodes.keys())],
            "removed": [old_by_key[k] for k in sorted(old_nodes.keys() - new_nodes.keys())],
            "changed": changed_nodes,
        },
        "edges": {
            "added": edge_list(edge_set(new_doc) - edge_set(old_doc)),
            "removed": edge_list(edge_set(old_doc) - edge_set(new_doc)),
        },
    }


# --- templates ----------------------------------------------------------------------


def save_as_template(
    pipeline: Pipeline, *, owner, name: str, description: str = "", version: int | None = None
) -> Template:
    document = export_document(pipeline, version)
    return Template.objects.create(name=name, description=description, owner=owner, document=document)


def create_from_template(template: Template, *, owner, name: str | None = None) -> Pipeline:
    return import_pipeline(
        owner=owner, document=template.document, name=name or None, message=f"Created from template {template.name}"
    )


def load_builtin_template_documents() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(BUILTIN_TEMPLATES_DIR.glob("*.json"))}


def install_builtin_templates() -> int:
    """Create or refresh the built-in templates (run after every migrate). Returns their count."""
    installed = 0
    for slug, document in load_builtin_template_documents().items():
        errors = validate_document(document)
        if errors:
            raise GraphInvalid(errors)
        Template.objects.update_or_create(
            owner=None,
            slug=slug,
            defaults={
                "name": document["name"],
                "description": document.get("description", ""),
                "document": documents.canonical(document),
            },
        )
        installed += 1
    return installed


def create_demo_pipelines(user) -> int:
    """Give the demo user one pipeline per built-in template, once. Returns how many they own."""
    if not Pipeline.objects.filter(owner=user).exists():
        for template in Template.objects.filter(owner__isnull=True).order_by("slug"):
            create_from_template(template, owner=user)
    return Pipeline.objects.filter(owner=user).count()
