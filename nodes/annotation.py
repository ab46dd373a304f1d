"""Data Annotation: a label from a fixed set for every record, and optionally a quality score.

`method: rules` (no model): the first label, in the order of `labels`, whose keywords or
/regular expressions/ match the text, else `default_label` (or none). (Not the order of the
`rules` object: a JSON object's key order is not kept everywhere, e.g. PostgreSQL's jsonb.)

`method: model`: the OpenAI-compatible client (`nodes/llm.py`) asks the model, in JSON
mode, for {"label": one of the labels} (plus "score" with `score_method: model`). The
reply is accepted whole or not at all: a label outside the set (after forgiving case and
surrounding spaces), a score that is not a number from 0 to 1, or a reply that is not a
JSON object leaves the record with `default_label` (none if unset) and no score, and is
counted by reason with samples (`label_not_allowed`, `invalid_score`, `invalid_json`, …).
A record is never dropped: every input record comes out, labelled or not.

Quality scores go into `score_field` when it is set: from the model, or from a cheap
heuristic (`score_method: heuristic`, no model; see `heuristic_quality`). The output adds
`label_counts` and, with scores, `scores` (count, mean, min, max, a 10-bin histogram).
"""

from __future__ import annotations

from collections.abc import Iterator
import re
from typing import Any

from nodes import llm
from nodes.data import count_of, indexed_records, read_inputs, require_input, result, write_artifact
from nodes.execution import ExecutionContext, NodeFailed, NodeResult
from nodes.expressions import ExpressionError, render
from nodes.operators.filters import alnum_count

HISTOGRAM_BINS = 10


def data_annotation(ctx: ExecutionContext) -> NodeResult:
    config = ctx.config
    method = config.get("method", "rules")
    score_field = config.get("score_field")
    score_method = config.get("score_method") or ("model" if method == "model" else "heuristic")
    if score_field and score_method == "model" and method != "model":
        raise NodeFailed(
            "score_method: model scores come with model labels; use method model or score_method heuristic"
        )
    manifests = require_input(ctx)
    labels = config["labels"]
    label_counts: dict[str, int] = {}
    scores = ScoreStats() if score_field else None
    extra: dict[str, Any] = {"method": method}

    def counted(record: dict[str, Any], label: Any, score: float | None) -> dict[str, Any]:
        label_counts[str(label)] = label_counts.get(str(label), 0) + 1
        out = {**record, config.get("label_field", "label"): label}
        if score_field:
            if score_method == "heuristic":
                score = heuristic_quality(record.get(config.get("text_field", "text")))
            out[score_field] = score
            scores.add(score)
        return out

    if method == "rules":
        label_of = _rule_labeller(config)
        batches = (
            [counted(record, label_of(record), None) for record in batch] for batch in read_inputs(ctx, manifests)
        )
        manifest = write_artifact(ctx, batches)
    else:
        if "model" not in config:
            raise NodeFailed("model: required when method is model")
        tally = llm.Tally()
        chat = llm.ChatSettings.from_config(config, ctx.owner_id)
        with llm.ChatClient(chat) as client:
            labeller = _ModelLabeller(ctx, client, tally, ask_score=bool(score_field) and score_method == "model")
            manifest = write_artifact(ctx, labeller.batches(manifests, counted))
        tally.check_rate(count_of(manifests), config.get("max_failure_rate", 0.5), final=True)
        extra.update(model=config["model"], **tally.report())
        ctx.log(
            f"{config['model']}: {extra['requests']} requests ({extra['retries']} retries, "
            f"{tally.failed_count} not accepted), {extra['tokens']['total']} tokens"
        )
    if scores is not None:
        extra["scores"] = scores.report(score_field, score_method)
    return result(manifest, records_in=count_of(manifests), labels=labels, label_counts=label_counts, **extra)


def merge_outputs(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The node-specific fields of shards' outputs, merged (the engine merges the records)."""
    if not outputs:
        return {}
    first = outputs[0]
    label_counts: dict[str, int] = {}
    for output in outputs:
        for label, count in output.get("label_counts", {}).items():
            label_counts[label] = label_counts.get(label, 0) + count
    merged: dict[str, Any] = {"labels": first.get("labels"), "label_counts": label_counts}
    for name in ("method", "model"):
        if name in first:
            merged[name] = first[name]
    with_tally = [output for output in outputs if "requests" in output]
    if with_tally:
        merged.update(llm.Tally.merge(with_tally))
    with_scores = [output["scores"] for output in outputs if "scores" in output]
    if with_scores:
        merged["scores"] = ScoreStats.merge(with_scores)
    return merged


# --- rules ----------------------------------------------------------------------------


def _rule_labeller(config: dict[str, Any]):
    text_field = config.get("text_field", "text")
    default = config.get("default_label")
    patterns = config.get("rules", {})
    rules = [(label, _matcher(label, patterns[label])) for label in config["labels"] if label in patterns]

    def label_of(record: dict[str, Any]) -> Any:
        text = record.get(text_field)
        if not isinstance(text, str):
            return default
        return next((name for name, matches in rules if matches(text)), default)

    return label_of


def _matcher(label: str, patterns: list[str]):
    parts = []
    for pattern in patterns:
        if len(pattern) > 2 and pattern.startswith("/") and pattern.endswith("/"):
            parts.append(pattern[1:-1])
        else:
            parts.append(re.escape(pattern))
    try:
        compiled = re.compile("|".join(parts), re.IGNORECASE)
    except re.error as error:
        raise NodeFailed(f"rules.{label}: not a valid regular expression: {error}") from None
    return compiled.search


# --- the model ------------------------------------------------------------------------

Job = tuple[int, dict[str, Any], list[dict[str, str]] | None]  # index, record, messages (None: no text)


class _ModelLabeller:
    def __init__(self, ctx: ExecutionContext, client: llm.ChatClient, tally: llm.Tally, *, ask_score: bool):
        self.ctx = ctx
        self.client = client
        self.tally = tally
        self.ask_score = ask_score
        self.labels: list[str] = ctx.config["labels"]
        self.by_folded = {label.strip().casefold(): label for label in self.labels}
        self.system = self._system_message()

    def _system_message(self) -> str:
        reply = '{"label": "<one of the labels>", "score": <a number from 0 to 1>}'
        if not self.ask_score:
            reply = '{"label": "<one of the labels>"}'
        text = (
            "You are a careful data annotator. Give the text exactly one label from this list: "
            + ", ".join(f'"{label}"' for label in self.labels)
            + ". "
        )
        if self.ask_score:
            text += (
                "Also rate how useful the text is as training data for a language model (clear, correct, "
                "complete, well written) as score, from 0 (useless) to 1 (excellent). "
            )
        text += f"Answer with a JSON object only: {reply}."
        instruction = self.ctx.config.get("instruction")
        return f"{text}\n\n{instruction}" if instruction else text

    def _messages(self, index: int, record: dict[str, Any]) -> list[dict[str, str]] | None:
        config = self.ctx.config
        template = config.get("prompt_template")
        if template:
            variables = {"params": self.ctx.params, "loop": self.ctx.loop or {}, "record": record, "index": index}
            try:
                text = render(template, variables)
            except ExpressionError as error:
                raise NodeFailed(f"prompt_template: {error}") from None
            text = text if isinstance(text, str) else str(text)
        else:
            text = record.get(config.get("text_field", "text"))
            if not isinstance(text, str):
                return None
        return [{"role": "system", "content": self.system}, {"role": "user", "content": text}]

    def _jobs(self, manifests: list[dict[str, Any]]) -> Iterator[Job]:
        for index, record in indexed_records(self.ctx, manifests):
            yield index, record, self._messages(index, record)

    def _ask(self, job: Job) -> tuple[str, float | None]:
        _, _, messages = job
        if messages is None:
            field = self.ctx.config.get("text_field", "text")
            raise llm.RequestFailed("no_text", f"the record has no text in {field!r} (and no prompt_template)")
        completion = self.client.complete(messages, json_mode=True)
        self.tally.completed(completion)
        reply = llm.parse_json_object(completion.content)
        label = reply.get("label")
        accepted = self.by_folded.get(label.strip().casefold()) if isinstance(label, str) else None
        if accepted is None:
            raise llm.RequestFailed(
                "label_not_allowed", f"{label!r} is not one of the labels", reply=completion.content
            )
        if not self.ask_score:
            return accepted, None
        score = reply.get("score")
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
            raise llm.RequestFailed(
                "invalid_score", f"score {score!r} is not a number from 0 to 1", reply=completion.content
            )
        return accepted, round(float(score), 4)

    def batches(self, manifests: list[dict[str, Any]], counted) -> Iterator[list[dict[str, Any]]]:
        config = self.ctx.config
        total = count_of(manifests)
        default = config.get("default_label")
        max_rate = config.get("max_failure_rate", 0.5)
        attempted = 0

        def progress(finished: int) -> None:
            self.ctx.progress(finished / total if total else None)

        groups = llm.map_concurrently(
            self._jobs(manifests), self._ask, concurrency=config.get("concurrency", 4), on_done=progress
        )
        for group in groups:
            out = []
            for (index, record, _), outcome in group:
                if isinstance(outcome, llm.RequestFailed):
                    self.tally.failed(outcome, index=index, record=record)
                    out.append(counted(record, default, None))
                else:
                    out.append(counted(record, *outcome))
            attempted += len(group)
            self.tally.check_rate(attempted, max_rate)
            yield out


# --- quality scores -------------------------------------------------------------------

_WORD = re.compile(r"\w+")


def heuristic_quality(text: Any) -> float:
    """A cheap 0-1 quality score without a model: the mean of three signals that catch the
    usual junk of web text. Length: up to 1 at 50 words (fragments score low). Alphanumeric
    share: letters and digits among the non-space characters (markup debris and symbol soup
    score low). Distinct word 3-grams: the share that are not repeats (spam and boilerplate
    score low; natural prose stays near 1 at any length). Not text: 0."""
    if not isinstance(text, str) or not text.strip():
        return 0.0
    words = _WORD.findall(text.casefold())
    length = min(1.0, len(words) / 50)
    visible = len(text) - sum(1 for char in text if char.isspace())
    alnum = min(1.0, alnum_count(text) / visible) if visible else 0.0
    grams = list(zip(words, words[1:], words[2:], strict=False))
    distinct = len(set(grams)) / len(grams) if len(grams) > 1 else 1.0
    return round((length + alnum + distinct) / 3, 4)


class ScoreStats:
    """Count, sum, min, max and a histogram of the scores; None (no score) is counted apart."""

    def __init__(self):
        self.count = 0
        self.missing = 0
        self.total = 0.0
        self.low: float | None = None
        self.high: float | None = None
        self.histogram = [0] * HISTOGRAM_BINS

    def add(self, score: float | None) -> None:
        if score is None:
            self.missing += 1
            return
        self.count += 1
        self.total += score
        self.low = score if self.low is None else min(self.low, score)
        self.high = score if self.high is None else max(self.high, score)
        self.histogram[min(HISTOGRAM_BINS - 1, int(score * HISTOGRAM_BINS))] += 1

    def report(self, field: str, method: str) -> dict[str, Any]:
        return {
            "field": field,
            "method": method,
            "count": self.count,
            "missing": self.missing,
            "sum": round(self.total, 6),
            "mean": round(self.total / self.count, 4) if self.count else None,
            "min": self.low,
            "max": self.high,
            "histogram": list(self.histogram),
        }

    @staticmethod
    def merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
        count = sum(report["count"] for report in reports)
        total = sum(report["sum"] for report in reports)
        lows = [report["min"] for report in reports if report["min"] is not None]
        highs = [report["max"] for report in reports if report["max"] is not None]
        return {
            "field": reports[0]["field"],
            "method": reports[0]["method"],
            "count": count,
            "missing": sum(report["missing"] for report in reports),
            "sum": round(total, 6),
            "mean": round(total / count, 4) if count else None,
            "min": min(lows) if lows else None,
            "max": max(highs) if highs else None,
            "histogram": [sum(bins) for bins in zip(*(report["histogram"] for report in reports), strict=True)],
        }
