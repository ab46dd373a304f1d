"""`manage.py run_pipeline <id-or-name> --param k=v [--version N] [--user NAME] [--wait] [--timeout S]`

Starts a run exactly as the API does (`engine.runs.start_run`, trigger "cli"). With --wait it
follows the run in the database and draws one line per node run: redrawn in place on a
terminal, printed as state changes otherwise (logs, CI).

Exit codes: 0 succeeded (or started, without --wait), 1 failed, 2 bad input (unknown
pipeline, bad parameter, unknown version), 3 cancelled, 4 still running when --timeout
expired, 130 interrupted (the run goes on).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from pipelines import services
from pipelines.engine import events
from pipelines.engine.runs import ParamsInvalid, start_run
from pipelines.engine.states import NodeState, RunState
from pipelines.graph_validation import GraphInvalid
from pipelines.models import NodeRun, Pipeline, Run

EXIT_SUCCEEDED, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_TIMED_OUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
RUN_EXIT = {RunState.SUCCEEDED: EXIT_SUCCEEDED, RunState.FAILED: EXIT_FAILED, RunState.CANCELLED: EXIT_CANCELLED}
POLL_SECONDS = 0.25
BAR_WIDTH = 20
NODE_FIELDS = ("pk", "node_key", "iteration", "state", "progress", "records_out", "attempt", "error")


def parse_param(text: str) -> tuple[str, Any]:
    """`n=3` → ("n", 3); `flag=true` → ("flag", True); `name=abc` → ("name", "abc")."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise CommandError(f"--param must be name=value, got {text!r}", returncode=EXIT_BAD_INPUT)
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return name, value


def find_pipeline(ref: str, user=None) -> Pipeline:
    queryset = services.visible_pipelines(user) if user is not None else Pipeline.objects.all()
    if ref.isdigit():
        pipeline = queryset.filter(pk=int(ref)).first()
        if pipeline is not None:
            return pipeline
    matches = list(queryset.filter(name=ref).order_by("pk").values_list("pk", flat=True))
    if not matches:
        raise CommandError(f"no pipeline with id or name {ref!r}", returncode=EXIT_BAD_INPUT)
    if len(matches) > 1:
        ids = ", ".join(map(str, matches))
        raise CommandError(
            f"{len(matches)} pipelines are named {ref!r} (ids {ids}); pass the id instead", returncode=EXIT_BAD_INPUT
        )
    return queryset.get(pk=matches[0])


def node_order(spec: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Sort key per node: (depth from the roots, position in the spec), so lines follow the flow."""
    incoming: dict[str, list[str]] = {}
    for edge in spec.get("edges", []):
        incoming.setdefault(edge["target"], []).append(edge["source"])
    depth: dict[str, int] = {}

    def depth_of(key: str, seen: frozenset = frozenset()) -> int:
        if key not in depth:
            sources = [s for s in incoming.get(key, []) if s not in seen]
            depth[key] = 1 + max((depth_of(s, seen | {key}) for s in sources), default=-1)
        return depth[key]

    return {node["key"]: (depth_of(node["key"]), index) for index, node in enumerate(spec.get("nodes", []))}


def bar(fraction: float | None, width: int = BAR_WIDTH) -> str:
    fraction = max(0.0, min(1.0, fraction or 0.0))
    filled = round(fraction * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {fraction * 100:3.0f}%"


class Command(BaseCommand):
    help = "Start a run of a pipeline (by id or unique name); with --wait, follow it until it finishes."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # `--version N` picks the pipeline version; it replaces Django's `--version` (its own version).
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("pipeline", help="Pipeline id, or its name if that is unique.")
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="A parameter value; JSON when it parses (3, true, [1,2]), else a string. Repeatable.",
        )
        parser.add_argument("--version", type=int, help="Run this version instead of the latest.")
        parser.add_argument("--user", help="Start the run as this user (who must be able to see the pipeline).")
        parser.add_argument("--wait", action="store_true", help="Follow the run and exit with its outcome.")
        parser.add_argument("--timeout", type=float, help="With --wait: stop waiting after this many seconds.")

    def handle(self, *args, **options):
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"no user named {options['user']!r}", returncode=EXIT_BAD_INPUT)
        pipeline = find_pipeline(options["pipeline"], user)
        params = dict(parse_param(text) for text in options["param"])
        try:
            run = start_run(pipeline, params, version=options["version"], trigger=Run.Trigger.CLI, user=user)
        except ParamsInvalid as exc:
            problems = "\n".join(f"  {e['field']}: {e['message']}" for e in exc.errors)
            raise CommandError(f"invalid parameters:\n{problems}", returncode=EXIT_BAD_INPUT) from None
        except services.NotFound:
            raise CommandError(
                f"version: pipeline {pipeline.pk} has no version {options['version']}", returncode=EXIT_BAD_INPUT
            ) from None
        except GraphInvalid as exc:
            problems = "\n".join(f"  {error}" for error in exc.errors)
            raise CommandError(f"the pipeline does not validate:\n{problems}", returncode=EXIT_BAD_INPUT) from None
        finally:
            events.flush(2)
        if not options["wait"]:
            self.stdout.write(str(run.pk))
            return
        self.stdout.write(f"run {run.pk} of {pipeline.name!r} (pipeline {pipeline.pk}) v{run.version} started")
        code = Watcher(self, run, live=self.stdout.isatty()).watch(options["timeout"])
        sys.exit(code)


class Watcher:
    """Polls a run and draws its node runs until the run finishes or the timeout expires."""

    def __init__(self, command: BaseCommand, run: Run, *, live: bool):
        self.out = command.stdout
        self.style = command.style
        self.run = run
        self.live = live
        self.order = node_order(run.spec)
        self.seen: dict[int, tuple[str, int]] = {}  # node run id -> (state, attempt) last printed
        self.drawn = 0  # lines drawn by the last live redraw
        self.key_width = min(30, max((len(key) for key in self.order), default=4))

    def watch(self, timeout: float | None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.live:
            self.out.write("\x1b[?25l", ending="")  # hide the cursor while redrawing
        try:
            while True:
                self.run.refresh_from_db(fields=["state", "error", "finished_at"])
                rows = self.rows()
                self.draw(rows)
                if self.run.state in RunState.FINISHED:
                    return self.finish()
                if deadline is not None and time.monotonic() >= deadline:
                    self.out.write(
                        f"run {self.run.pk} is still {self.run.state} after {timeout:g} s; it goes on without us",
                        self.style.WARNING,
                    )
                    return EXIT_TIMED_OUT
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            self.out.write(f"\nstopped watching; run {self.run.pk} goes on", self.style.WARNING)
            return EXIT_INTERRUPTED
        finally:
            if self.live:
                self.out.write("\x1b[?25h", ending="")
            self.out.flush()

    def rows(self) -> list[dict[str, Any]]:
        rows = list(NodeRun.objects.filter(run_id=self.run.pk).values(*NODE_FIELDS))
        far = (10**9, 10**9)
        rows.sort(key=lambda r: (r["iteration"] != "", self.order.get(r["node_key"], far), r["iteration"], r["pk"]))
        return rows

    @staticmethod
    def label(row: dict[str, Any]) -> str:
        return f"{row['node_key']}[{row['iteration']}]" if row["iteration"] else row["node_key"]

    def styled_state(self, state: str, width: int = 9) -> str:
        text = state.ljust(width)
        style = {
            NodeState.SUCCEEDED: self.style.SUCCESS,
            NodeState.CACHED: self.style.SUCCESS,
            NodeState.FAILED: self.style.ERROR,
            NodeState.CANCELLED: self.style.WARNING,
            NodeState.RUNNING: self.style.HTTP_INFO,
        }.get(state)
        return style(text) if style else text

    def line(self, row: dict[str, Any], key_width: int, columns: int) -> str:
        label = self.label(row)[:key_width].ljust(key_width)
        records = f"  out {row['records_out']}" if row["records_out"] is not None else ""
        attempt = f"  attempt {row['attempt']}" if row["attempt"] > 1 else ""
        plain = f"  {label}  {row['state']:<9}  {bar(row['progress'])}{records}{attempt}"
        if row["state"] == NodeState.FAILED and row["error"]:
            plain += f"  {row['error']}"
        plain = plain[: max(20, columns - 1)].replace("\n", " ")
        # Colour the state only, after cutting to the terminal width.
        head = f"  {label}  "
        return head + self.styled_state(row["state"]) + plain[len(head) + 9 :]

    def draw(self, rows: list[dict[str, Any]]) -> None:
        if self.live:
            self.redraw(rows)
        else:
            self.print_changes(rows)

    def redraw(self, rows: list[dict[str, Any]]) -> None:
        size = shutil.get_terminal_size((100, 40))
        # Iteration rows only while they are busy: a long loop would flood the screen.
        shown = [r for r in rows if not r["iteration"] or r["state"] in NodeState.UNFINISHED]
        limit = max(3, size.lines - 3)
        hidden = len(shown) - limit if len(shown) > limit else 0
        shown = shown[:limit] if hidden else shown
        key_width = min(40, max((len(self.label(r)) for r in shown), default=4))
        lines = [self.line(r, key_width, size.columns) for r in shown]
        if hidden:
            lines.append(f"  … {hidden} more node runs")
        text = f"\x1b[{self.drawn}F" if self.drawn else ""
        text += "".join(f"\x1b[2K{line}\n" for line in lines) + "\x1b[J"
        self.out.write(text, ending="")
        self.out.flush()
        self.drawn = len(lines)

    def print_changes(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            mark = (row["state"], row["attempt"])
            if self.seen.get(row["pk"]) == mark:
                continue
            self.seen[row["pk"]] = mark
            now = timezone.localtime().strftime("%H:%M:%S")
            records = f"  out {row['records_out']}" if row["records_out"] is not None else ""
            attempt = f"  attempt {row['attempt']}" if row["attempt"] > 1 else ""
            error = f"  {row['error']}" if row["state"] == NodeState.FAILED and row["error"] else ""
            label = self.label(row).ljust(self.key_width)
            self.out.write(f"{now}  {label}  {row['state']:<9}{records}{attempt}{error}".rstrip())
        self.out.flush()

    def finish(self) -> int:
        run = self.run
        took = ""
        if run.finished_at and run.started_at:
            took = f" in {(run.finished_at - run.started_at).total_seconds():.1f} s"
        style = {RunState.SUCCEEDED: self.style.SUCCESS, RunState.FAILED: self.style.ERROR}.get(
            run.state, self.style.WARNING
        )
        self.out.write(f"run {run.pk} {run.state}{took}", style)
        if run.error:
            self.out.write(run.error, self.style.ERROR)
        return RUN_EXIT.get(run.state, EXIT_FAILED)
