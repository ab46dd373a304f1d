"""kill -9 of workers at random moments during runs of a 10-node pipeline with a fan-out and a
Loop: every run succeeds, every node's recorded attempt took effect exactly once (an attempt
killed after its effect leaves it too: see bench.soak.effect_counts), nothing is left running.
The suite runs 40 runs and 6 kills (a worker restart takes seconds on 2 cores);
`bench/soak.py` runs the 100-run version and longer, with figures."""

import pytest

from bench.soak import chaos_document, effect_counts, run_figures, soak
from pipelines.engine.runs import start_run
from tests.factories import create_pipeline


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_kill_9_of_workers_during_runs_loses_and_repeats_nothing(two_workers, beat, alice, tmp_path):
    marker = tmp_path / "markers.txt"
    pipeline = create_pipeline(alice, chaos_document(marker, sleep=0.02))
    run_ids, killer = soak(
        lambda: start_run(pipeline, user=alice).pk, two_workers.kill, runs=40, kills=6, parallel=6, gap=(0.2, 1.0)
    )
    assert killer.done == 6  # runs keep pace with the kills: all of them happened while runs were under way
    figures = run_figures(run_ids)
    assert figures["run_states"] == {"succeeded": 40}, figures
    assert figures["stuck_node_runs"] == 0, figures
    effects = effect_counts(marker, run_ids)
    assert effects["effects_expected"] == 40 * 11
    assert (effects["duplicate_effects"], effects["lost_effects"], effects["unexpected_effects"]) == (0, 0, 0), effects
    # A killed attempt may have left its effect before dying; each such node ran again, once.
    assert effects["repeated_by_lost_workers"] <= figures["superseded_attempts"], (effects, figures)
