"""200 runs posted at once through the runs API, executed by two real workers: every run
succeeds and every node's effect happens exactly once. The figures (runs/s, p95 node start
delay) are printed; bench/soak.py --concurrent 200 measures them on the 10-node pipeline."""

from collections import Counter

import pytest

from bench.soak import load, run_figures
from tests.factories import create_pipeline


def chain_document(marker):
    steps = [{"key": key, "type": "test_step", "config": {"marker_file": str(marker)}} for key in ("first", "second")]
    return {"name": "load", "nodes": steps, "edges": [{"source": "first", "source_handle": "out", "target": "second"}]}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_200_runs_posted_at_once_all_succeed_with_every_effect_once(two_workers, alice, alice_api, tmp_path):
    marker = tmp_path / "markers.txt"
    pipeline_id = create_pipeline(alice, chain_document(marker)).pk

    def post():
        response = alice_api.post(f"/api/pipelines/{pipeline_id}/runs/", {}, format="json")
        assert response.status_code == 201, response.content
        return response.json()["id"]

    figures = load(post, 200)
    run_ids = figures["run_ids"]
    assert len(set(run_ids)) == 200
    print(
        f"\n200 runs: {figures['runs_per_s']:.1f} runs/s, node start delay p95 {figures['start_delay_p95_ms']:.0f} ms"
    )
    ended = run_figures(run_ids)
    assert ended["run_states"] == {"succeeded": 200}, ended
    assert ended["stuck_node_runs"] == 0
    effects = Counter(line.rsplit("|", 1)[0] for line in marker.read_text().splitlines())  # (without the attempt)
    assert effects == Counter(f"{run}|{key}|" for run in run_ids for key in ("first", "second"))
    assert figures["node_runs_started"] == 400
