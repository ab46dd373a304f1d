"""The one validator: each rule, with the node key and field it names."""

import copy

import pytest

from pipelines.graph_validation import GraphError, validate_document
from tests.factories import edge, example_document, linear_document, node


def errors_of(document):
    return [(e.node, e.field, e.message) for e in validate_document(document)]


def only_error(document) -> GraphError:
    errors = validate_document(document)
    assert len(errors) == 1, errors
    return errors[0]


def test_example_and_builtin_shapes_are_valid():
    assert validate_document(example_document()) == []
    assert validate_document(linear_document(10)) == []
    assert validate_document({"name": "empty draft"}) == []


@pytest.mark.parametrize(
    ("document", "field", "message"),
    [
        ([], "document", "must be a JSON object"),
        ({}, "name", "is required"),
        ({"name": ""}, "name", "should be non-empty"),
        ({"name": "x", "colour": "red"}, "colour", "is not a known field"),
        ({"name": "x", "nodes": {}}, "nodes", "is not of type 'array'"),
        ({"name": "x", "nodes": [{"type": "loop"}]}, "nodes[0].key", "is required"),
        ({"name": "x", "nodes": [{"key": "1abc", "type": "loop"}]}, "nodes[0].key", "must start with a letter"),
        (
            {"name": "x", "nodes": [{"key": "a", "type": "loop", "position": {"x": "1", "y": 0}}]},
            "nodes[0].position.x",
            "is not of type 'number'",
        ),
        ({"name": "x", "edges": [{"source": "a"}]}, "edges[0].target", "is required"),
        ({"name": "x", "parameters": [{"name": "p", "type": "colour"}]}, "parameters[0].type", "is not one of"),
        ({"name": "x", "nodes": [node(f"n{i}", "wait") for i in range(1001)]}, "nodes", "too many items"),
    ],
)
def test_document_shape_errors_name_the_field(document, field, message):
    errors = validate_document(document)
    assert errors, "expected an error"
    assert errors[0].field == field
    assert message in errors[0].message


def test_shape_error_inside_a_node_names_its_key():
    doc = {"name": "x", "nodes": [{"key": "clean", "type": "data_cleaning", "label": 5}]}
    assert errors_of(doc) == [("clean", "nodes[0].label", "5 is not of type 'string'")]


def test_unknown_type():
    doc = {"name": "x", "nodes": [node("mystery", "teleport")]}
    assert errors_of(doc) == [("mystery", "nodes[0].type", "unknown node type 'teleport'")]


def test_config_failing_the_type_schema():
    doc = example_document()
    annotate = next(n for n in doc["nodes"] if n["key"] == "annotate")
    annotate["config"]["labels"] = "not-a-list"
    annotate["config"]["colour"] = "red"
    index = doc["nodes"].index(annotate)
    assert sorted(errors_of(doc)) == [
        ("annotate", f"nodes[{index}].config.colour", "is not a known field"),
        ("annotate", f"nodes[{index}].config.labels", "'not-a-list' is not of type 'array'"),
    ]


def test_missing_required_config_and_type_rules():
    doc = {
        "name": "x",
        "nodes": [
            {"key": "cond", "type": "condition", "config": {}},
            {"key": "repeat", "type": "loop", "config": {"mode": "while", "condition": "true"}},
            {"key": "pause", "type": "wait", "config": {}},
        ],
    }
    assert sorted(errors_of(doc)) == [
        ("cond", "nodes[0].config.expression", "is required"),
        ("pause", "nodes[2].config.duration_seconds", "set exactly one of duration_seconds and until"),
        ("repeat", "nodes[1].config.max_iterations", "required when mode is while"),
    ]


def test_whole_template_values_pass_the_schema_and_are_checked_at_run_time():
    doc = {
        "name": "x",
        "parameters": [{"name": "n", "type": "integer", "default": 3}],
        "nodes": [node("repeat", "loop", config={"mode": "count", "count": "{{ params.n }}"})],
    }
    assert validate_document(doc) == []


def test_bad_settings():
    doc = {"name": "x", "nodes": [node("w", "wait", settings={"retries": -1, "join": "some"})]}
    assert sorted(errors_of(doc)) == [
        ("w", "nodes[0].settings.join", "'some' is not one of ['all', 'any', 'none_failed']"),
        ("w", "nodes[0].settings.retries", "-1 is less than the minimum of 0"),
    ]


def test_dangling_edges():
    doc = {"name": "x", "nodes": [node("a", "wait")], "edges": [edge("a", "ghost"), edge("nobody", "a")]}
    assert errors_of(doc) == [
        (None, "edges[0].target", "no node with key 'ghost'"),
        (None, "edges[1].source", "no node with key 'nobody'"),
    ]


def test_unknown_handle_names_the_handles_that_exist():
    doc = {
        "name": "x",
        "nodes": [node("cond", "condition"), node("par", "parallel"), node("a", "wait"), node("b", "wait")],
        "edges": [edge("cond", "a", "maybe"), edge("par", "b", "branch-3")],
    }
    assert errors_of(doc) == [
        ("cond", "edges[0].source_handle", "condition has no handle 'maybe' (it has true, false, error)"),
        ("par", "edges[1].source_handle", "parallel has no handle 'branch-3' (it has branch-1, branch-2, error)"),
    ]


def test_parallel_handles_follow_its_branch_count():
    doc = {
        "name": "x",
        "nodes": [node("par", "parallel", config={"branches": 3})] + [node(f"w{i}", "wait") for i in (1, 2, 3)],
        "edges": [edge("par", f"w{i}", f"branch-{i}") for i in (1, 2, 3)],
    }
    assert validate_document(doc) == []


def test_cycle_outside_a_loop():
    doc = linear_document(4)
    doc["edges"].append(edge("clean_2", "clean_1"))
    (error,) = validate_document(doc)
    assert error.field == "edges"
    assert error.message.startswith("cycle clean_1 → clean_2 → clean_1")
    assert "Loop" in error.message


def test_self_loop_and_edges_crossing_a_loop_boundary():
    doc = {
        "name": "x",
        "nodes": [node("rounds", "loop"), node("gen", "data_synthesis", parent="rounds"), node("a", "wait")],
        "edges": [edge("a", "a"), edge("a", "gen")],
    }
    assert errors_of(doc) == [
        ("a", "edges[0]", "a node cannot connect to itself; use a Loop"),
        ("a", "edges[1]", "an edge cannot cross a Loop boundary; connect to the Loop node itself"),
    ]


def test_loop_body_is_valid_when_it_stays_inside():
    doc = {
        "name": "x",
        "nodes": [
            node("input", "input_dataset"),
            node("rounds", "loop"),
            node("clean", parent="rounds"),
            node("annotate", "data_annotation", parent="rounds"),
        ],
        "edges": [edge("input", "rounds"), edge("clean", "annotate")],
    }
    # `clean` needs an input: inside a Loop it receives the Loop's input.
    assert validate_document(doc) == []


def test_parent_must_be_an_existing_loop():
    doc = {
        "name": "x",
        "nodes": [node("w", "wait"), node("a", "wait", parent="w"), node("b", "wait", parent="ghost")],
    }
    assert errors_of(doc) == [
        ("a", "nodes[1].parent", "'w' is not a Loop container"),
        ("b", "nodes[2].parent", "no node with key 'ghost'"),
    ]


def test_container_cannot_contain_itself():
    doc = {"name": "x", "nodes": [node("l1", "loop", parent="l2"), node("l2", "loop", parent="l1")]}
    assert errors_of(doc) == [
        ("l1", "nodes[0].parent", "a container cannot be inside itself"),
        ("l2", "nodes[1].parent", "a container cannot be inside itself"),
    ]


def test_unreachable_nodes():
    doc = linear_document(3)
    # A cleaning step with no input, feeding an annotation: both are cut off from any source.
    doc["nodes"] += [node("stray"), node("label", "data_annotation")]
    doc["edges"].append(edge("stray", "label"))
    assert errors_of(doc) == [
        ("stray", "edges", "needs an input: connect an upstream node to it"),
        ("label", "edges", "unreachable: no path from a starting node leads here"),
    ]


def test_undefined_parameter_reference():
    doc = example_document()
    doc["parameters"] = [p for p in doc["parameters"] if p["name"] != "input_dataset"]
    errors = errors_of(doc)
    assert {(node, message) for node, _, message in errors} == {
        ("input", "refers to undefined parameter 'input_dataset'"),
        ("save_annotated", "refers to undefined parameter 'input_dataset'"),
        ("save_synthesized", "refers to undefined parameter 'input_dataset'"),
    }
    input_index = next(i for i, n in enumerate(doc["nodes"]) if n["key"] == "input")
    assert ("input", f"nodes[{input_index}].config.dataset", "refers to undefined parameter 'input_dataset'") in errors


def test_expression_references_and_syntax():
    doc = example_document()
    cond = next(n for n in doc["nodes"] if n["key"] == "enough")
    index = doc["nodes"].index(cond)
    cond["config"]["expression"] = "nodes.cleanse.output.count > params['max']"
    assert sorted(errors_of(doc)) == [
        ("enough", f"nodes[{index}].config.expression", "refers to undefined parameter 'max'"),
        ("enough", f"nodes[{index}].config.expression", "refers to unknown node 'cleanse'"),
    ]
    cond["config"]["expression"] = "count >"
    ((key, field, message),) = errors_of(doc)
    assert (key, field) == ("enough", f"nodes[{index}].config.expression")
    assert message.startswith("syntax error")
    cond["config"]["expression"] = "{{ params.min_records }}"
    assert errors_of(doc) == [("enough", f"nodes[{index}].config.expression", "write the expression without {{ }}")]


def test_template_syntax_error_in_config():
    doc = example_document()
    target = next(n for n in doc["nodes"] if n["key"] == "save_annotated")
    target["config"]["dataset"] = "{{ params.input_dataset "
    error = only_error(doc)
    assert (error.node, error.message[:12]) == ("save_annotated", "syntax error")


def test_duplicate_keys_edges_and_parameters():
    doc = linear_document(3)
    doc["nodes"].append(copy.deepcopy(doc["nodes"][1]))
    doc["edges"].append(copy.deepcopy(doc["edges"][0]))
    doc["parameters"] = [{"name": "p", "type": "string"}, {"name": "p", "type": "integer"}]
    errors = errors_of(doc)
    assert ("clean_1", "key", "duplicate node key 'clean_1'") in errors
    assert ("input", "edges[2]", "duplicate edge") in errors
    assert (None, "parameters[1].name", "duplicate parameter name 'p'") in errors


@pytest.mark.parametrize(
    ("parameter", "field", "message"),
    [
        ({"name": "n", "type": "integer", "default": "3"}, "default", "must be an integer"),
        ({"name": "n", "type": "integer", "default": True}, "default", "must be an integer"),
        ({"name": "x", "type": "number", "default": "1.5"}, "default", "must be a number"),
        ({"name": "b", "type": "boolean", "default": 1}, "default", "must be true or false"),
        ({"name": "e", "type": "enum"}, "choices", "an enum parameter needs a list of choices"),
        ({"name": "e", "type": "enum", "choices": ["a", "b"], "default": "c"}, "default", "must be one of a, b"),
        ({"name": "d", "type": "dataset", "default": ""}, "default", "must be a dataset name"),
        ({"name": "t", "type": "datetime", "default": "tomorrow"}, "default", "must be an ISO 8601 date-time"),
    ],
)
def test_parameter_definitions(parameter, field, message):
    error = only_error({"name": "x", "parameters": [parameter]})
    assert error.field == f"parameters[0].{field}"
    assert error.message.startswith(message)


def test_valid_parameter_types():
    parameters = [
        {"name": "s", "type": "string", "default": "hi"},
        {"name": "i", "type": "integer", "default": 3},
        {"name": "n", "type": "number", "default": 0.5},
        {"name": "b", "type": "boolean", "default": False},
        {"name": "e", "type": "enum", "choices": ["fast", "thorough"], "default": "fast"},
        {"name": "d", "type": "dataset", "required": True},
        {"name": "t", "type": "datetime", "default": "2026-01-31T02:00:00+00:00"},
    ]
    assert validate_document({"name": "x", "parameters": parameters}) == []
