"""Scheduling tests re-use the engine tests' real worker and beat processes."""

import pytest

from tests.factories import create_pipeline


def step(key, **config):
    return {"key": key, "type": "test_step", "config": config}


def nightly_document(**step_config):
    """One test step and two parameters: `n` (integer, required) and `label` (default "x")."""
    return {
        "name": "nightly",
        "parameters": [
            {"name": "n", "type": "integer", "required": True},
            {"name": "label", "type": "string", "default": "x"},
        ],
        "nodes": [step("work", **step_config)],
        "edges": [],
    }


@pytest.fixture
def nightly(alice):
    return create_pipeline(alice, nightly_document())
