"""The built-in node types: their keys, handles, config schemas and executors.

Each type declares what a valid node of it looks like; the data nodes' work is in
`nodes/data.py`. Any string value may instead be a `{{ ... }}` template,
which is checked when a run resolves it (see `pipelines/graph_validation.py`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from nodes import annotation, data, llm, synthesis
from nodes.execution import ChildRunRequest, ExecutionContext, NodeFailed, NodeResult
from nodes.expressions import has_template
from nodes.registry import ERROR_HANDLE, ConfigError, NodeType, register

DATASET_REF = {
    "type": "string",
    "minLength": 1,
    "maxLength": 200,
    "description": "Dataset name, or a template such as {{ params.input_dataset }}.",
    # The designer offers the names of /api/datasets/ here.
    "x-catalogue": "datasets",
}
VERSION_REF = {
    "description": "A dataset version number, or latest.",
    "anyOf": [{"type": "integer", "minimum": 1}, {"const": "latest"}],
    "default": "latest",
}
OPERATOR_STEP = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        # The designer offers the operators of /api/operators/, each with its config form.
        "name": {"type": "string", "minLength": 1, "maxLength": 100, "x-catalogue": "operators"},
        "config": {"type": "object", "default": {}},
    },
}
SHARDS = {
    "description": "Split the input into shards run as parallel tasks: auto, or a count.",
    "anyOf": [{"const": "auto"}, {"type": "integer", "minimum": 1, "maximum": 256}],
    "default": "auto",
}


@register
class InputDataset(NodeType):
    key = "input_dataset"
    category = "data"
    label = "Input Dataset"
    description = "Reads a dataset version (latest or pinned) as the records that flow downstream."
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["dataset"],
        "properties": {"dataset": DATASET_REF, "version": VERSION_REF},
    }

    @classmethod
    def execute(cls, ctx: ExecutionContext) -> NodeResult:
        return data.input_dataset(ctx)

    @classmethod
    def cache_material(cls, ctx: ExecutionContext) -> Any:
        from datasets.models import DatasetVersion

        versions = DatasetVersion.objects.filter(dataset__owner_id=ctx.owner_id, dataset__name=ctx.config["dataset"])
        return versions.order_by("-number").values_list("pk", flat=True).first()


@register
class OutputDataset(NodeType):
    key = "output_dataset"
    category = "data"
    label = "Output Dataset"
    description = "Writes the incoming records as a new version of a named dataset."
    needs_input = True
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["dataset"],
        "properties": {
            "dataset": DATASET_REF,
            "mode": {"enum": ["overwrite", "append"], "default": "overwrite"},
        },
    }

    @classmethod
    def execute(cls, ctx: ExecutionContext) -> NodeResult:
        return data.output_dataset(ctx)


@register
class DataCollection(NodeType):
    key = "data_collection"
    category = "data"
    label = "Data Collection"
    description = "Collects records from files under allowed roots, allowed HTTP(S) URLs or a SQL query."
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "task": {"type": "string", "minLength": 1, "description": "A saved collection task, by name."},
            "source": {"enum": ["files", "http", "sql"]},
            "paths": {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 1000},
            "urls": {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": 8000},
                "maxItems": 1000,
                "description": "http(s) URLs on hosts allowed by DATAMATE_COLLECT_ALLOWED_HOSTS.",
            },
            "query": {"type": "string", "minLength": 1, "maxLength": 100_000, "description": "One SELECT."},
            "connection": {
                "type": "string",
                "minLength": 1,
                "description": "Name of a configured database connection (DATAMATE_SQL_CONNECTIONS).",
            },
            "format": {"enum": ["auto", "jsonl", "json", "csv", "parquet", "text"], "default": "auto"},
            "max_bytes": {
                "type": "integer",
                "minimum": 1,
                "description": "http: the largest body per URL; default and upper bound DATAMATE_COLLECT_MAX_BYTES.",
            },
            "timeout_seconds": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": 24 * 3600,
                "description": "http: time per URL (connect, redirects, download); sql: the query's time. "
                "Default DATAMATE_COLLECT_TIMEOUT_SECONDS.",
            },
            "headers": {
                "type": "object",
                "additionalProperties": {"type": "string", "maxLength": 1000},
                "maxProperties": 10,
                "description": "http request headers: Accept, Accept-Language, User-Agent only "
                "(credentials do not belong in a node config).",
            },
        },
    }

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> list[ConfigError]:
        from nodes import collection

        return collection.config_errors(config)

    @classmethod
    def execute(cls, ctx: ExecutionContext) -> NodeResult:
        from nodes import collection

        return collection.data_collection(ctx)

    @classmethod
    def cache_material(cls, ctx: ExecutionContext) -> Any:
        return _saved_task_config(ctx, "collection")


@register
class DataCleaning(NodeType):
    key = "data_cleaning"
    category = "data"
    label = "Data Cleaning"
    description = "Runs a chain of cleaning operators (mappers, filters, deduplicators) over the records."
    needs_input = True
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "task": {"type": "string", "minLength": 1, "description": "A saved cleaning task, by name."},
            "operators": {"type": "array", "items": OPERATOR_STEP, "maxItems": 100},
            "text_field": {"type": "string", "minLength": 1, "default": "text"},
            "shards": SHARDS,
        },
    }

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> list[ConfigError]:
        from nodes.operators.base import OperatorConfigError
        from nodes.operators.chain import Chain

        if "task" not in config and not config.get("operators"):
            return [ConfigError("operators", "add at least one operator, or choose a saved cleaning task")]
        if _contains_template(config.get("operators")) or has_template(config.get("text_field")):
            return []  # checked when a run resolves them
        try:
            Chain.check_steps(config.get("operators", []))
        except OperatorConfigError as error:
            return [ConfigError(error.field, error.message)]
        return []

    @classmethod
    def execute(cls, ctx: ExecutionContext) -> NodeResult:
        return data.data_cleaning(ctx)

    @classmethod
    def cache_material(cls, ctx: ExecutionContext) -> Any:
        return _saved_task_config(ctx, "cleaning")

    shardable = True

    @classmethod
    def shard_stages(cls, config: dict[str, Any]) -> int:
        from nodes.operators.base import Deduplicator, OperatorConfigError
        from nodes.operators.chain import Chain

        try:
            steps = Chain.check_steps(config.get("operators", []))
        except OperatorConfigError:
            return 1
        return 1 + sum(issubclass(operator, Deduplicator) for operator, _ in steps)

    @classmethod
    def merge_shards(cls, stages: list[list[dict[str, Any]]]) -> dict[str, Any]:
        from nodes.operators.chain import Chain

        reports = [Chain.merge_reports([output["operators"] for output in stage]) for stage in stages]
        return {"operators": Chain.join_reports(reports)}


@register
class DataSynthesis(NodeType):
    key = "data_synthesis"
    category = "data"
    label = "Data Synthesis"
    description = (
        "Generates records with a model (any OpenAI-compatible endpoint) or the builtin template: per input "
        "record, per seed, or from scratch."
    )
    record_template_fields = ("prompt_template", "system_prompt")
    executor_version = "2"
    shardable = True
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["prompt_template"],
        "properties": {
            "prompt_template": {
                "type": "string",
                "minLength": 1,
                "description": "Rendered per request with record, index, sample, seed, params and loop.",
            },
            "model": {
                "type": "string",
                "minLength": 1,
                "default": "builtin-template",
                "description": "A model name at base_url, or builtin-template (the rendered prompt is the text).",
            },
            "count": {
                "type": "integer",
                "minimum": 1,
                "maximum": 1_000_000,
                "default": 1,
                "description": "Records to make when there is neither an input nor seeds.",
            },
            "seeds": {
                "type": "array",
                "maxItems": 1_000_000,
                "description": "One request per item (an object is the record, anything else is {seed: item}); "
                "or a template such as {{ params.topics }}.",
            },
            "samples_per_record": {"type": "integer", "minimum": 1, "maximum": 100, "default": 1},
            "output_field": {"type": "string", "minLength": 1, "default": "text"},
            "json_fields": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "minItems": 1,
                "maxItems": 100,
                "uniqueItems": True,
                "description": "Ask for a JSON object (response_format json_object) and take these fields from it.",
            },
            "system_prompt": {"type": "string", "description": "A system message; a template like prompt_template."},
            **llm.CLIENT_PROPERTIES,
            "shards": SHARDS,
        },
    }

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> list[ConfigError]:
        model = config.get("model", synthesis.BUILTIN_MODEL)
        builtin = model == synthesis.BUILTIN_MODEL
        errors = llm.check_config(config, needs_endpoint=not builtin and not has_template(model))
        if builtin and "json_fields" in config:
            errors.append(ConfigError("json_fields", "the builtin-template model renders text; choose a model"))
        return errors

    @classmethod
    def execute(cls, ctx: ExecutionContext) -> NodeResult:
        return synthesis.data_synthesis(ctx)

    @classmethod
    def merge_outputs(cls, outputs: list[dict[str, Any]]) -> dict[str, Any]:
        return synthesis.merge_outputs(outputs)


@register
class DataAnnotation(NodeType):
    key = "data_annotation"
    category = "data"
    label = "Data Annotation"
    description = "Labels each record from a fixed set (rules or a model) and can add a quality score."
    needs_input = True
    record_template_fields = ("prompt_template",)
    executor_version = "2"
    shardable = True
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["labels"],
        "properties": {
            "labels": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "maxItems": 1000},
            "method": {"enum": ["rules", "model"], "default": "rules"},
            "instruction": {"type": "string", "description": "method model: guidance added to the model's prompt."},
            "text_field": {"type": "string", "minLength": 1, "default": "text"},
            "label_field": {"type": "string", "minLength": 1, "default": "label"},
            "rules": {
                "type": "object",
                "description": "Label → keywords, or /regular expressions/; the first label (in the order of "
                "labels) that matches wins.",
                "additionalProperties": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
            },
            "default_label": {
                "type": ["string", "null"],
                "description": "The label when no rule matches, or when the model's reply is not accepted.",
            },
            "score_field": {"type": "string", "minLength": 1, "description": "Write a 0-1 quality score here."},
            "score_method": {
                "enum": ["model", "heuristic"],
                "description": "model: the model scores with its label (method model). heuristic: length, "
                "alphanumeric share and repetition, no model. Default: model with method model, else heuristic.",
            },
            "model": {"type": "string", "minLength": 1, "description": "method model: the model name at base_url."},
            "prompt_template": {
                "type": "string",
                "minLength": 1,
                "description": "method model: the user message, a template over record, index, params; "
                "default: the text field.",
            },
            **llm.CLIENT_PROPERTIES,
            "shards": SHARDS,
        },
    }

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> list[ConfigError]:
        labels, rules = config.get("labels", []), config.get("rules", {})
        errors = []
        if isinstance(labels, list) and not _contains_template(labels) and isinstance(rules, dict):
            unknown = [label for label in rules if label not in labels]
            errors += [ConfigError(f"rules.{label}", f"{label!r} is not one of the labels") for label in unknown]
            default = config.get("default_label")
            if isinstance(default, str) and not has_template(default) and default not in labels:
                errors.append(ConfigError("default_label", f"{default!r} is not one of the labels"))
        method = config.get("method", "rules")
        if method == "model":
            if "model" not in config:
                errors.append(ConfigError("model", "required when method is model"))
            if rules:
                errors.append(ConfigError("rules", "used only with method rules"))
            errors += llm.check_config(config, needs_endpoint=True)
        elif method == "rules":
            model_only = [name for name in ("model", "prompt_template", "base_url") if name in config]
            errors += [ConfigError(name, "used only with method model") for name in model_only]
            if config.get("score_method") == "model":
                errors.append(ConfigError("score_method", "model scores come with model labels; use method model"))
        if "score_method" in config and "score_field" not in config:
            errors.append(ConfigError("score_field", "required when score_method is set"))
        return errors

    @classmethod
    def execute(cls, ctx: ExecutionContext) -> NodeResult:
        return annotation.data_annotation(ctx)

    @classmethod
    def merge_outputs(cls, outputs: list[dict[str, Any]]) -> dict[str, Any]:
        return annotation.merge_outputs(outputs)


@register
class Condition(NodeType):
    key = "condition"
    category = "logic"
    label = "Condition Branch"
    description = "Evaluates an expression over params and upstream outputs; continues on true or false."
    expression_fields = ("expression",)
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["expression"],
        "properties": {
            "expression": {
                "type": "string",
                "minLength": 1,
                "maxLength": 2000,
                "description": "e.g. nodes.clean.output.count > 1000",
            }
        },
    }

    @classmethod
    def output_handles(cls, config: dict[str, Any]) -> list[str]:
        return ["true", "false", ERROR_HANDLE]

    @classmethod
    def execute(cls, ctx: ExecutionContext) -> NodeResult:
        # The engine evaluates `expression` in the sandbox and passes the result in the config.
        result = bool(ctx.config["expression"])
        ctx.log(f"condition is {str(result).lower()}")
        return NodeResult(output={"result": result, **_merged_inputs(ctx)}, handles=["true" if result else "false"])


@register
class Loop(NodeType):
    key = "loop"
    category = "logic"
    label = "Loop"
    description = "A container whose body runs per iteration: a count, while a condition holds, or for each item."
    expression_fields = ("condition",)
    is_container = True
    not_standalone = "a Loop runs a body of nodes"
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["mode"],
        "properties": {
            "mode": {"enum": ["count", "while", "for_each"], "default": "count"},
            "count": {"type": "integer", "minimum": 0, "maximum": 100_000},
            "condition": {"type": "string", "minLength": 1, "maxLength": 2000},
            "items": {"description": "A list, or a template that yields one.", "type": ["array", "string"]},
            "max_iterations": {"type": "integer", "minimum": 1, "maximum": 100_000},
        },
    }

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> list[ConfigError]:
        required = {"count": ["count"], "while": ["condition", "max_iterations"], "for_each": ["items"]}
        mode = config.get("mode", "count")
        return [
            ConfigError(field, f"required when mode is {mode}")
            for field in required.get(mode, [])
            if field not in config
        ]


@register
class Parallel(NodeType):
    key = "parallel"
    category = "logic"
    label = "Parallel"
    description = "Starts N branches that run concurrently; join them with any node that takes several inputs."
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"branches": {"type": "integer", "minimum": 2, "maximum": 32, "default": 2}},
    }

    @classmethod
    def output_handles(cls, config: dict[str, Any]) -> list[str]:
        branches = config.get("branches", 2)
        count = branches if isinstance(branches, int) else 32  # a template: checked at run time
        return [f"branch-{i}" for i in range(1, count + 1)] + [ERROR_HANDLE]

    @classmethod
    def execute(cls, ctx: ExecutionContext) -> NodeResult:
        return NodeResult(output=_merged_inputs(ctx), handles=cls.output_handles(ctx.config)[:-1])


@register
class Wait(NodeType):
    key = "wait"
    category = "logic"
    label = "Wait"
    description = "A durable timer: waits a duration or until a time without holding a worker."
    not_standalone = "a Wait node is a durable timer"
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "duration_seconds": {"type": "number", "minimum": 0, "maximum": 366 * 24 * 3600},
            "until": {"type": "string", "minLength": 1, "description": "ISO 8601 time with a zone."},
        },
    }

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> list[ConfigError]:
        if ("duration_seconds" in config) == ("until" in config):
            return [ConfigError("duration_seconds", "set exactly one of duration_seconds and until")]
        until = config.get("until")
        if until is not None and not has_template(until):
            try:
                moment = datetime.fromisoformat(until)
            except ValueError:
                return [ConfigError("until", "not an ISO 8601 time, e.g. 2026-01-31T02:00:00+00:00")]
            if moment.tzinfo is None:
                return [ConfigError("until", "add a time zone, e.g. +00:00")]
        return []

    @classmethod
    def execute(cls, ctx: ExecutionContext) -> NodeResult:
        if "until" in ctx.config:
            until = datetime.fromisoformat(str(ctx.config["until"]))
            if until.tzinfo is None:
                raise NodeFailed("until needs a time zone")
        else:
            until = datetime.now(UTC) + timedelta(seconds=float(ctx.config["duration_seconds"]))
        ctx.log(f"waiting until {until.isoformat()}")
        return NodeResult(output={"waited_until": until.isoformat(), **_merged_inputs(ctx)}, wait_until=until)


@register
class SubPipeline(NodeType):
    key = "subpipeline"
    category = "composition"
    label = "Sub-pipeline"
    description = "Runs another pipeline as a child run; its outputs become this node's output."
    not_standalone = "a Sub-pipeline node starts a child run"
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["pipeline"],
        "properties": {
            "pipeline": {"type": "integer", "minimum": 1, "description": "Id of the pipeline to run."},
            "version": VERSION_REF,
            "parameters": {"type": "object", "description": "Child parameter values; templates allowed."},
        },
    }

    @classmethod
    def execute(cls, ctx: ExecutionContext) -> NodeResult:
        version = ctx.config.get("version", "latest")
        return NodeResult(
            child_run=ChildRunRequest(
                pipeline_id=int(ctx.config["pipeline"]),
                version=None if version == "latest" else int(version),
                params=ctx.config.get("parameters", {}),
            )
        )


# --- shared by the executors ---------------------------------------------------------


def _merged_inputs(ctx: ExecutionContext) -> dict[str, Any]:
    """The upstream summary passed through logic nodes (a single input's output as it is)."""
    if len(ctx.inputs) == 1:
        return dict(next(iter(ctx.inputs.values())))
    return {"inputs": ctx.inputs} if ctx.inputs else {}


def _saved_task_config(ctx: ExecutionContext, kind: str) -> dict[str, Any] | None:
    """The saved task a config names, as it is now (an edited task must not hit the cache)."""
    from nodes.models import SavedTask

    if "task" not in ctx.config:
        return None
    return (
        SavedTask.objects.filter(owner_id=ctx.owner_id, kind=kind, name=ctx.config["task"])
        .values_list("config", flat=True)
        .first()
    )


def _contains_template(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_contains_template(item) for item in value.values())
    if isinstance(value, list):
        return any(_contains_template(item) for item in value)
    return has_template(value)
