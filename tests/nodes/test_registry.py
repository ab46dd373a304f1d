"""The node-type catalogue."""

import sys
import textwrap

from jsonschema import Draft202012Validator
import pytest

from nodes import registry
from pipelines.graph_validation import validate_document
from tests.factories import BUILTIN_NODE_TYPES


def test_catalogue_has_every_type_with_a_valid_closed_schema():
    types = {t.key: t for t in registry.all_types()}
    assert set(types) >= BUILTIN_NODE_TYPES
    for node_type in types.values():
        Draft202012Validator.check_schema(node_type.config_schema)
        # Unknown config fields are refused, so typos never pass silently.
        assert node_type.config_schema.get("additionalProperties") is False, node_type.key
        description = node_type.describe()
        assert description["label"] and description["description"]
        assert "error" in description["handles"]
        for name, value in description["default_config"].items():
            Draft202012Validator(node_type.config_schema["properties"][name]).validate(value)


def test_handles_per_type():
    assert registry.get("condition").output_handles({}) == ["true", "false", "error"]
    assert registry.get("parallel").output_handles({"branches": 4}) == [
        "branch-1",
        "branch-2",
        "branch-3",
        "branch-4",
        "error",
    ]
    assert registry.get("data_cleaning").output_handles({}) == ["out", "error"]


def test_unknown_type():
    with pytest.raises(registry.UnknownNodeType):
        registry.get("nope")


def test_a_registered_type_needs_a_valid_schema():
    class Broken(registry.NodeType):
        key = "broken"
        category = "data"
        label = "Broken"
        config_schema = {"type": "not-a-type"}

    with pytest.raises(Exception, match="not-a-type"):
        registry.register(Broken)
    with pytest.raises(registry.UnknownNodeType):
        registry.get("broken")


def test_third_party_type_registers_through_an_entry_point(tmp_path, monkeypatch):
    """A package declaring `datamate.node_types` gets its type into the catalogue and validator."""
    (tmp_path / "acme_nodes.py").write_text(
        textwrap.dedent(
            """
            from nodes.registry import NodeType

            class Translate(NodeType):
                key = "acme_translate"
                category = "data"
                label = "Translate"
                description = "Translates a text field."
                needs_input = True
                config_schema = {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["language"],
                    "properties": {"language": {"type": "string"}},
                }
            """
        )
    )
    dist = tmp_path / "acme_nodes-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-nodes\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[datamate.node_types]\ntranslate = acme_nodes:Translate\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.load_entry_points()
    try:
        assert registry.get("acme_translate").label == "Translate"
        doc = {
            "name": "x",
            "nodes": [
                {"key": "src", "type": "input_dataset", "config": {"dataset": "d"}},
                {"key": "tr", "type": "acme_translate", "config": {}},
            ],
            "edges": [{"source": "src", "target": "tr"}],
        }
        assert [(e.node, e.field) for e in validate_document(doc)] == [("tr", "nodes[1].config.language")]
    finally:
        registry._registry.pop("acme_translate", None)
        sys.modules.pop("acme_nodes", None)


def test_a_catalogue_used_first_by_two_threads_at_once_gives_both_its_items():
    """A thread-pool worker's first two tasks look node types up at the same moment."""
    import threading
    import time

    from nodes.catalogue import Catalogue

    class Slow:
        config_schema = {"type": "object"}

    def load_builtins():
        time.sleep(0.2)  # the other thread asks meanwhile
        catalogue.register(Slow)

    catalogue = Catalogue(
        noun="thing", group="datamate.tests.none", name_of=lambda item: "slow", check=lambda item: None,
        load_builtins=load_builtins, unknown=KeyError,
    )  # fmt: skip
    found, errors = [], []

    def look_up():
        try:
            found.append(catalogue.get("slow"))
        except KeyError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=look_up) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and found == [Slow, Slow]
