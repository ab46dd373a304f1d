"""Data Synthesis: new records from a prompt template.

The template (Jinja2, in the one sandbox of `nodes/expressions.py`) is rendered once per
input record (`record`, `index`), once per item of `seeds` (`seed`, and `record`: the seed
if it is an object, else {"seed": value}), or `count` times from nothing (`index`); with
`samples_per_record` > 1, once per sample (`sample`). `params` and `loop` are there too.

With `model: builtin-template` the rendered text is the output (no network). Any other
model is called through the OpenAI-compatible client (`nodes/llm.py`): the reply goes into
`output_field`, or, with `json_fields`, the model is asked for a JSON object
(`response_format: json_object`) whose fields become the record's. A request that fails or
a reply that is not the JSON asked for makes no record: it is counted by reason and sampled
in the output (`failures`, `failure_samples`) next to `requests`, `retries` and `tokens`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from nodes import llm
from nodes.data import BATCH_SIZE, count_of, indexed_records, input_manifests, result, write_artifact
from nodes.execution import ExecutionContext, NodeFailed, NodeResult
from nodes.expressions import ExpressionError, render

BUILTIN_MODEL = "builtin-template"


def data_synthesis(ctx: ExecutionContext) -> NodeResult:
    config = ctx.config
    model = config.get("model", BUILTIN_MODEL)
    samples = config.get("samples_per_record", 1)
    manifests = input_manifests(ctx)
    if manifests and "seeds" in config:
        raise NodeFailed("seeds: this node has input records; use either seeds or an upstream node")
    if manifests:
        sources = _from_inputs(ctx, manifests)
        total, records_in = count_of(manifests) * samples, count_of(manifests)
    elif "seeds" in config:
        sources = _from_seeds(config["seeds"])
        total, records_in = len(config["seeds"]) * samples, None
    else:
        count = config.get("count", 1)
        sources = ((index, {"index": index}, {}) for index in range(count))
        total, records_in = count * samples, None
    jobs = _jobs(ctx, sources, samples)

    if model == BUILTIN_MODEL:
        if "json_fields" in config:
            raise NodeFailed("json_fields: the builtin-template model renders text; choose a model to ask for JSON")
        manifest = write_artifact(ctx, _rendered_only(ctx, jobs, total))
        return result(manifest, records_in=records_in, model=model)

    tally = llm.Tally()
    chat = llm.ChatSettings.from_config(config, ctx.owner_id)
    with llm.ChatClient(chat) as client:
        manifest = write_artifact(ctx, _generated(ctx, client, jobs, total, tally))
    tally.check_rate(total, config.get("max_failure_rate", 0.5), final=True)
    report = tally.report()
    ctx.log(
        f"{model}: {manifest['count']} records from {report['requests']} requests "
        f"({report['retries']} retries, {tally.failed_count} failed), {report['tokens']['total']} tokens"
    )
    return result(manifest, records_in=records_in, model=model, **report)


def merge_outputs(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The node-specific fields of shards' outputs, merged (the engine merges the records)."""
    merged: dict[str, Any] = {"model": outputs[0].get("model", BUILTIN_MODEL)} if outputs else {}
    with_tally = [output for output in outputs if "requests" in output]
    if with_tally:
        merged.update(llm.Tally.merge(with_tally))
    return merged


# --- what is rendered -----------------------------------------------------------------

Source = tuple[int, dict[str, Any], dict[str, Any]]  # index, record, extra template variables
Job = tuple[int, dict[str, Any], list[dict[str, str]]]  # index, record, messages


def _from_inputs(ctx: ExecutionContext, manifests: list[dict[str, Any]]) -> Iterator[Source]:
    for index, record in indexed_records(ctx, manifests):
        yield index, record, {}


def _from_seeds(seeds: list[Any]) -> Iterator[Source]:
    for index, seed in enumerate(seeds):
        yield index, (dict(seed) if isinstance(seed, dict) else {"seed": seed}), {"seed": seed}


def _jobs(ctx: ExecutionContext, sources: Iterator[Source], samples: int) -> Iterator[Job]:
    """The messages of each request, rendered here (in the executor's thread)."""
    template, system = ctx.config["prompt_template"], ctx.config.get("system_prompt")
    base = {"params": ctx.params, "loop": ctx.loop or {}}
    for index, record, extra in sources:
        for sample in range(samples):
            variables = {**base, **extra, "record": record, "index": index, "sample": sample}
            messages = []
            if system:
                messages.append({"role": "system", "content": _render("system_prompt", system, variables)})
            messages.append({"role": "user", "content": _render("prompt_template", template, variables)})
            yield index, record, messages


def _render(field: str, template: str, variables: dict[str, Any]) -> str:
    try:
        text = render(template, variables)
    except ExpressionError as error:
        raise NodeFailed(f"{field}: {error}") from None
    return text if isinstance(text, str) else str(text)


def _rendered_only(ctx: ExecutionContext, jobs: Iterator[Job], total: int) -> Iterator[list[dict[str, Any]]]:
    """builtin-template: the rendered prompt is the generated text."""
    field = ctx.config.get("output_field", "text")
    batch: list[dict[str, Any]] = []
    done = 0
    for _, record, messages in jobs:
        batch.append({**record, field: messages[-1]["content"]})
        if len(batch) >= BATCH_SIZE:
            done += len(batch)
            yield batch
            batch = []
            ctx.progress(done / total if total else None, records_out=done)
    if batch:
        yield batch


def _generated(
    ctx: ExecutionContext, client: llm.ChatClient, jobs: Iterator[Job], total: int, tally: llm.Tally
) -> Iterator[list[dict[str, Any]]]:
    config = ctx.config
    field = config.get("output_field", "text")
    json_fields = config.get("json_fields")
    max_rate = config.get("max_failure_rate", 0.5)
    written = 0

    def generate(job: Job) -> dict[str, Any]:
        _, record, messages = job
        completion = client.complete(messages, json_mode=bool(json_fields))
        tally.completed(completion)
        if not json_fields:
            return {**record, field: completion.content}
        reply = llm.parse_json_object(completion.content)
        missing = [name for name in json_fields if name not in reply]
        if missing:
            raise llm.RequestFailed(
                "missing_fields", f"the reply has no {', '.join(missing)}", reply=completion.content
            )
        return {**record, **{name: reply[name] for name in json_fields}}

    def progress(finished: int) -> None:
        ctx.progress(finished / total if total else None, records_out=written)

    attempted = 0
    for group in llm.map_concurrently(jobs, generate, concurrency=config.get("concurrency", 4), on_done=progress):
        made = []
        for (index, record, _), outcome in group:
            if isinstance(outcome, llm.RequestFailed):
                tally.failed(outcome, index=index, record=record)
            else:
                made.append(outcome)
        attempted += len(group)
        tally.check_rate(attempted, max_rate)
        written += len(made)
        if made:
            yield made
