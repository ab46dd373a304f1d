"""Data Synthesis and Data Annotation calling a model: a real chat-completions server in this
process (tests/chat_server.py), real runs on a real worker process, real stored secrets."""

import json

import pytest

from nodes import registry, secrets
from pipelines.engine.runs import start_run
from pipelines.graph_validation import validate_document
from pipelines.models import NodeRunLog
from tests.chat_server import ChatServer
from tests.engine.conftest import all_records, make_dataset, node, outputs, wait_for_run
from tests.factories import create_pipeline, edge

KEY = "sk-stored-7d1e0c55aa"
TEXTS = [
    "Adding fractions: 1/2 + 1/4 = 3/4.",
    "The weather in the mountains changes quickly.",
    "The match ended two to one after extra time.",
]


@pytest.fixture
def server():
    with ChatServer() as running:
        yield running


@pytest.fixture
def notes(alice):
    return make_dataset(alice, "notes", [{"id": n, "text": text} for n, text in enumerate(TEXTS, 1)])


def model_config(server, **config):
    return {"model": "tiny-chat", "base_url": server.base_url, "backoff_seconds": 0.01, **config}


def run_document(alice, document, params=None):
    return wait_for_run(start_run(create_pipeline(alice, document), params or {}, user=alice), timeout=60)


def one_node(key, type_, **config) -> dict:
    """A document of one node, named after it."""
    return {"name": key, "nodes": [node(key, type_, **config)]}


def notes_into(key, type_, **config) -> dict:
    """A document: the `notes` dataset read into one node, named after it."""
    return {
        "name": key,
        "nodes": [node("read", "input_dataset", dataset="notes"), node(key, type_, **config)],
        "edges": [edge("read", key)],
    }


def succeeded_output(alice, document, key) -> dict:
    """Runs the document and, once it has succeeded, returns the output of node `key`."""
    run = run_document(alice, document)
    assert run.state == "succeeded", run.error
    return outputs(run)[key]


# --- synthesis ------------------------------------------------------------------------


@pytest.mark.slow
def test_synthesis_asks_per_record_and_sample_parses_json_and_sums_tokens(engine, alice, alice_api, server, notes):
    secrets.create_secret(owner=alice, name="llm", value=KEY)
    server.answer = lambda prompt, body: json.dumps({"question": f"Q: {prompt}", "answer": "42", "extra": 1})
    document = notes_into(
        "quiz",
        "data_synthesis",
        **model_config(server),
        api_key_secret="llm",
        system_prompt="You write quiz questions.",
        prompt_template="Ask about {{ record.text }} (take {{ sample }})",
        json_fields=["question", "answer"],
        samples_per_record=2,
        concurrency=2,
        temperature=0.7,
    )
    run = run_document(alice, document)
    assert run.state == "succeeded", run.error
    out = outputs(run)["quiz"]
    made = all_records(out["manifest"])
    assert [(r["id"], r["question"], r["answer"]) for r in made] == [
        (n, f"Q: Ask about {text} (take {sample})", "42") for n, text in enumerate(TEXTS, 1) for sample in (0, 1)
    ]
    assert "extra" not in made[0]
    assert out["count"] == 6 and out["requests"] == 6 and out["failures"] == {}
    # The server counts words: the node's totals are the sums of what it reported.
    prompt_tokens = sum(len(m["content"].split()) for body in server.bodies for m in body["messages"])
    completion_tokens = sum(len(server.answer(prompt, {}).split()) for prompt in server.prompts())
    assert out["tokens"] == {
        "prompt": prompt_tokens,
        "completion": completion_tokens,
        "total": prompt_tokens + completion_tokens,
    }
    body = server.bodies[0]
    assert body["model"] == "tiny-chat" and body["temperature"] == 0.7
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0] == {"role": "system", "content": "You write quiz questions."}
    # The stored key reached the endpoint, and nothing the run shows holds it.
    assert server.authorizations == [f"Bearer {KEY}"] * 6
    assert KEY not in json.dumps(outputs(run))
    assert not NodeRunLog.objects.filter(node_run__run=run, message__contains=KEY).exists()
    for path in (f"/api/runs/{run.pk}/", f"/api/runs/{run.pk}/logs/"):
        assert KEY.encode() not in alice_api.get(path).content


@pytest.mark.slow
def test_synthesis_from_a_parameter_driven_seed_list(engine, alice, server):
    document = {
        "name": "seeded",
        "parameters": [{"name": "topics", "type": "string", "default": "fractions,tide pools,volcanoes"}],
        "nodes": [
            node(
                "ask",
                "data_synthesis",
                **model_config(server),
                seeds="{{ params.topics.split(',') }}",
                prompt_template="Write a question about {{ seed }}.",
                output_field="question",
            ),
            node(
                "offline",
                "data_synthesis",
                seeds=[{"topic": "tides", "level": 2}],
                prompt_template="{{ record.topic }} at level {{ record.level }}",
            ),
        ],
        "edges": [],
    }
    run = run_document(alice, document, {"topics": "fractions,volcanoes"})
    assert run.state == "succeeded", run.error
    assert all_records(outputs(run)["ask"]["manifest"]) == [
        {"seed": "fractions", "question": "reply to: Write a question about fractions."},
        {"seed": "volcanoes", "question": "reply to: Write a question about volcanoes."},
    ]
    # builtin-template renders without any network call.
    assert all_records(outputs(run)["offline"]["manifest"]) == [
        {"topic": "tides", "level": 2, "text": "tides at level 2"}
    ]
    assert server.calls == 2


@pytest.mark.slow
def test_429s_are_retried_and_concurrency_stays_bounded_in_a_run(engine, alice, server):
    server.fail_first, server.fail_status, server.retry_after = 2, 429, "1"
    server.delay = 0.2
    document = one_node(
        "ask",
        "data_synthesis",
        **model_config(server),
        seeds=list(range(9)),
        prompt_template="number {{ seed }}",
        concurrency=3,
    )
    out = succeeded_output(alice, document, "ask")
    assert out["count"] == 9 and out["retries"] == 2 and out["requests"] == 9
    assert server.calls == 11
    assert server.max_in_flight == 3
    assert [r["text"] for r in all_records(out["manifest"])] == [f"reply to: number {n}" for n in range(9)]


@pytest.mark.slow
def test_replies_that_are_not_the_json_asked_for_are_counted_and_sampled(engine, alice, server):
    answers = {"0": '{"title": "fine"}', "1": "Sure! The title is: fine", "2": '{"name": "x"}', "3": '{"title": "ok"}'}
    server.answer = lambda prompt, body: answers[prompt]
    document = one_node(
        "ask",
        "data_synthesis",
        **model_config(server),
        seeds=list(range(4)),
        prompt_template="{{ seed }}",
        json_fields=["title"],
    )
    out = succeeded_output(alice, document, "ask")
    assert [r["title"] for r in all_records(out["manifest"])] == ["fine", "ok"]
    assert out["failures"] == {"invalid_json": 1, "missing_fields": 1}
    (not_json,) = out["failure_samples"]["invalid_json"]
    assert not_json["index"] == 1 and not_json["reply"] == "Sure! The title is: fine"
    assert out["failure_samples"]["missing_fields"][0]["message"] == "the reply has no title"
    assert out["requests"] == 4 and out["tokens"]["completion"] > 0


@pytest.mark.slow
def test_a_node_whose_requests_all_fail_fails_with_the_reason(engine, alice, server):
    server.fail_first, server.fail_status = 1000, 500
    document = one_node(
        "ask",
        "data_synthesis",
        **model_config(server, max_retries=1),
        seeds=["a", "b", "c"],
        prompt_template="{{ seed }}",
    )
    run = run_document(alice, document)
    assert run.state == "failed"
    assert "max_failure_rate: 3 of 3 requests failed (http_500: 3)" in run.error
    assert server.calls == 6


@pytest.mark.slow
def test_a_server_variable_cannot_be_sent_as_the_key(engine, alice, server):
    config = model_config(server, prompt_template="hi", api_key_env="DATABASE_URL")
    errors = validate_document(one_node("ask", "data_synthesis", **config))
    assert [(e.field, e.message) for e in errors] == [
        (
            "nodes[0].config.api_key_env",
            "'DATABASE_URL' is not an allowed API key variable (DATAMATE_LLM_KEY_ENV_VARS: OPENAI_API_KEY)",
        )
    ]
    # Through a parameter it passes the design-time check, and the worker refuses it.
    document = {
        "name": "leak",
        "parameters": [{"name": "var", "type": "string", "default": "DATABASE_URL"}],
        "nodes": [node("ask", "data_synthesis", **{**config, "api_key_env": "{{ params.var }}"})],
    }
    run = run_document(alice, document)
    assert run.state == "failed"
    assert run.error.startswith("ask: api_key_env: 'DATABASE_URL' is not an allowed API key variable"), run.error
    assert server.calls == 0


# --- annotation -----------------------------------------------------------------------


def judge(prompt: str, body: dict) -> str:
    """Labels a model might give: one in a different case, one outside the label set."""
    if "fractions" in prompt:
        return '{"label": " Math ", "score": 0.9}'
    if "weather" in prompt:
        return '{"label": "weather", "score": 0.3}'
    return '{"label": "sports", "score": 0.5}'


@pytest.mark.slow
def test_model_annotation_labels_scores_and_refuses_labels_outside_the_set(engine, alice, server, notes):
    server.answer = judge
    document = notes_into(
        "label",
        "data_annotation",
        **model_config(server),
        method="model",
        labels=["math", "weather", "other"],
        default_label="other",
        instruction="Sports count as other.",
        score_field="quality",
    )
    out = succeeded_output(alice, document, "label")
    assert [(r["id"], r["label"], r["quality"]) for r in all_records(out["manifest"])] == [
        (1, "math", 0.9),
        (2, "weather", 0.3),
        (3, "other", None),  # "sports" is not a label: the default, and no score
    ]
    assert out["label_counts"] == {"math": 1, "weather": 1, "other": 1}
    assert out["failures"] == {"label_not_allowed": 1}
    assert out["failure_samples"]["label_not_allowed"][0]["reply"] == '{"label": "sports", "score": 0.5}'
    assert out["scores"]["count"] == 2 and out["scores"]["missing"] == 1 and out["scores"]["mean"] == 0.6
    system = server.bodies[0]["messages"][0]["content"]
    assert '"math", "weather", "other"' in system and "score" in system and "Sports count as other." in system
    assert server.bodies[0]["response_format"] == {"type": "json_object"}
    assert out["requests"] == 3 and out["tokens"]["total"] > 0


@pytest.mark.slow
def test_rule_annotation_with_a_heuristic_score_needs_no_model(engine, alice, notes):
    document = notes_into(
        "label",
        "data_annotation",
        labels=["math", "other"],
        rules={"math": ["fraction"]},
        default_label="other",
        score_field="quality",
    )
    out = succeeded_output(alice, document, "label")
    labelled = all_records(out["manifest"])
    assert [r["label"] for r in labelled] == ["math", "other", "other"]
    assert all(0 < r["quality"] <= 1 for r in labelled)
    assert out["scores"]["method"] == "heuristic" and out["scores"]["count"] == 3
    assert "requests" not in out


# --- units: config rules, the heuristic, merging shards' outputs -------------------------


def test_annotation_config_rules_name_the_field():
    annotation = registry.get("data_annotation")
    problems = annotation.validate_config({"labels": ["a"], "method": "model", "rules": {"a": ["x"]}})
    assert [p.field for p in problems] == ["model", "rules", "base_url"]
    problems = annotation.validate_config({"labels": ["a"], "base_url": "http://h/v1", "score_method": "model"})
    assert [p.field for p in problems] == ["base_url", "score_method", "score_field"]


def test_synthesis_config_rules_name_the_field():
    synthesis = registry.get("data_synthesis")
    assert [p.field for p in synthesis.validate_config({"prompt_template": "x", "model": "gpt"})] == ["base_url"]
    problems = synthesis.validate_config({"prompt_template": "x", "json_fields": ["a"]})
    assert [p.field for p in problems] == ["json_fields"]
    assert synthesis.validate_config({"prompt_template": "x"}) == []


def test_the_heuristic_score_prefers_prose_to_junk():
    from nodes.annotation import heuristic_quality

    prose = (
        "Fractions describe parts of a whole. To add two fractions, first rewrite them with a common "
        "denominator, then add the numerators and keep the denominator. For example, one half plus one "
        "quarter equals three quarters, because one half is two quarters."
    )
    assert heuristic_quality(prose) > 0.9
    assert heuristic_quality("buy now " * 40) < 0.7
    assert heuristic_quality("<<<>>> ### !!! ??? ***") < 0.4
    assert heuristic_quality("Click here") < heuristic_quality(prose)
    assert heuristic_quality(None) == 0.0 and heuristic_quality("   ") == 0.0


def shard_tally(requests, prompt, completion, failures, samples):
    return {
        "requests": requests,
        "retries": 1,
        "tokens": {"prompt": prompt, "completion": completion, "total": prompt + completion},
        "failures": failures,
        "failure_samples": samples,
    }


def test_synthesis_merges_its_shards_outputs():
    samples = {"invalid_json": [{"index": n, "message": "m"} for n in range(4)]}
    outputs_ = [
        {"model": "m", "count": 5, **shard_tally(6, 100, 40, {"invalid_json": 4}, samples)},
        {"model": "m", "count": 7, **shard_tally(7, 50, 10, {"invalid_json": 4, "http_500": 1}, samples)},
    ]
    merged = registry.get("data_synthesis").merge_outputs(outputs_)
    assert merged["model"] == "m"
    assert merged["requests"] == 13 and merged["retries"] == 2
    assert merged["tokens"] == {"prompt": 150, "completion": 50, "total": 200}
    assert merged["failures"] == {"http_500": 1, "invalid_json": 8}
    assert len(merged["failure_samples"]["invalid_json"]) == 5  # capped
    assert "count" not in merged  # the engine merges the records
    assert registry.get("data_synthesis").merge_outputs([{"model": "builtin-template"}] * 2) == {
        "model": "builtin-template"
    }


def test_annotation_merges_its_shards_outputs():
    def scores(count, total, low, high, histogram):
        return {
            "field": "q",
            "method": "model",
            "count": count,
            "missing": 1,
            "sum": total,
            "mean": total / count,
            "min": low,
            "max": high,
            "histogram": histogram,
        }

    first = {
        "labels": ["a", "b"],
        "label_counts": {"a": 2, "None": 1},
        "method": "model",
        "model": "m",
        "scores": scores(2, 1.0, 0.2, 0.8, [0, 0, 1, 0, 0, 0, 0, 0, 1, 0]),
        **shard_tally(3, 10, 5, {"label_not_allowed": 1}, {"label_not_allowed": [{"index": 0, "message": "x"}]}),
    }
    second = {
        "labels": ["a", "b"],
        "label_counts": {"a": 1, "b": 3},
        "method": "model",
        "model": "m",
        "scores": scores(4, 2.0, 0.1, 0.9, [0, 1, 0, 0, 2, 0, 0, 0, 0, 1]),
        **shard_tally(4, 20, 5, {}, {}),
    }
    merged = registry.get("data_annotation").merge_outputs([first, second])
    assert merged["labels"] == ["a", "b"]
    assert merged["label_counts"] == {"a": 3, "None": 1, "b": 3}
    assert merged["failures"] == {"label_not_allowed": 1} and merged["requests"] == 7
    assert merged["tokens"]["total"] == 40
    assert merged["scores"] == {
        "field": "q",
        "method": "model",
        "count": 6,
        "missing": 2,
        "sum": 3.0,
        "mean": 0.5,
        "min": 0.1,
        "max": 0.9,
        "histogram": [0, 1, 1, 0, 2, 0, 0, 0, 1, 1],
    }
