"""The operator catalogue: schemas, entry points, the API."""

import sys
import textwrap

from jsonschema import Draft202012Validator
import pytest

from nodes.operators import registry
from nodes.operators.base import KINDS, OperatorConfigError

REQUIRED_OPERATORS = {
    "html_to_text": "mapper", "unicode_nfkc": "mapper", "normalize_whitespace": "mapper",
    "remove_control_chars": "mapper", "remove_urls": "mapper", "mask_pii": "mapper", "truncate": "mapper",
    "select_fields": "mapper", "rename_fields": "mapper", "text_length": "filter", "word_count": "filter",
    "special_char_ratio": "filter", "alnum_ratio": "filter", "repetition": "filter", "keywords": "filter",
    "language": "filter", "exact_dedup": "deduplicator", "near_dedup": "deduplicator",
}  # fmt: skip
# The smallest valid config of operators that have required fields.
MINIMAL_CONFIG = {"select_fields": {"fields": ["text"]}, "rename_fields": {"mapping": {"a": "b"}},
                  "keywords": {"words": ["x"]}, "language": {"languages": ["en"]}}  # fmt: skip


def test_catalogue_has_every_operator_with_its_kind():
    kinds = {op.name: op.kind for op in registry.all_operators()}
    assert {name: kinds.get(name) for name in REQUIRED_OPERATORS} == REQUIRED_OPERATORS


@pytest.mark.parametrize("operator", registry.all_operators(), ids=lambda op: op.name)
def test_every_operator_has_a_valid_closed_schema_and_builds_from_defaults(operator):
    Draft202012Validator.check_schema(operator.config_schema)
    assert operator.config_schema.get("additionalProperties") is False
    assert operator.kind in KINDS
    description = operator.describe()
    assert description["label"] and description["description"] and description["version"]
    for name, value in description["default_config"].items():
        Draft202012Validator(operator.config_schema["properties"][name]).validate(value)
    built = operator.build(MINIMAL_CONFIG.get(operator.name, {}))
    assert built.process_batch([]) == ([], [])


def test_config_errors_name_the_field():
    with pytest.raises(OperatorConfigError) as error:
        registry.get("text_length").build({"min_length": -1}, path="operators[2].config")
    assert error.value.field == "operators[2].config.min_length"
    with pytest.raises(OperatorConfigError) as error:
        registry.get("text_length").build({"min_lenght": 5})
    assert error.value.field == "config.min_lenght" and error.value.message == "is not a known field"
    with pytest.raises(OperatorConfigError) as error:
        registry.get("keywords").build({})
    assert error.value.field == "config.words" and error.value.message == "is required"
    with pytest.raises(OperatorConfigError) as error:
        registry.get("word_count").build({"min_words": 10, "max_words": 5})
    assert error.value.field == "config.max_words"
    with pytest.raises(OperatorConfigError) as error:
        registry.get("mask_pii").build({"tokens": {"email": 1}})
    assert error.value.field == "config.tokens.email"


def test_unknown_operator():
    with pytest.raises(registry.UnknownOperator):
        registry.get("nope")


def test_a_registered_operator_needs_a_valid_schema_and_kind():
    from nodes.operators.base import TextFilter

    class Broken(TextFilter):
        name = "broken"
        label = "Broken"
        config_schema = {"type": "not-a-type"}

    with pytest.raises(Exception, match="not-a-type"):
        registry.register(Broken)

    class Odd(TextFilter):
        name = "odd"
        kind = "transformer"
        label = "Odd"

    with pytest.raises(ValueError, match="kind"):
        registry.register(Odd)
    with pytest.raises(registry.UnknownOperator):
        registry.get("broken")


def test_third_party_operator_registers_through_an_entry_point(tmp_path, monkeypatch):
    (tmp_path / "acme_ops.py").write_text(
        textwrap.dedent(
            """
            from nodes.operators.base import TextMapper, object_schema

            class Shout(TextMapper):
                name = "acme_shout"
                label = "Shout"
                description = "Upper-cases the text."
                config_schema = object_schema({})

                def map_text(self, text):
                    return text.upper()
            """
        )
    )
    dist = tmp_path / "acme_ops-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-ops\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[datamate.operators]\nshout = acme_ops:Shout\nbad = acme_ops:Missing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.load_entry_points()  # the broken one is logged and left out
    try:
        from nodes.operators.chain import Chain

        chain = Chain.from_steps([{"name": "acme_shout"}])
        assert chain.process_batch([{"text": "hi"}]) == [{"text": "HI"}]
        assert "acme_shout" in {d["name"] for d in registry.describe()}
    finally:
        registry._registry.pop("acme_shout", None)
        sys.modules.pop("acme_ops", None)


def test_api_lists_and_retrieves_operators(alice_api, api_client):
    assert api_client.get("/api/operators/").status_code in (401, 403)

    listed = alice_api.get("/api/operators/")
    assert listed.status_code == 200
    by_name = {item["name"]: item for item in listed.json()}
    assert set(REQUIRED_OPERATORS) <= set(by_name)
    assert by_name["text_length"]["kind"] == "filter"
    assert by_name["text_length"]["default_config"]["min_length"] == 50

    one = alice_api.get("/api/operators/exact_dedup/")
    assert one.status_code == 200
    assert one.json()["config_schema"]["additionalProperties"] is False
    assert alice_api.get("/api/operators/nope/").status_code == 404


def test_openapi_schema_lists_operators(alice_api):
    schema = alice_api.get("/api/schema/", {"format": "json"}).json()
    assert "/api/operators/" in schema["paths"] and "/api/operators/{id}/" in schema["paths"]
