"""README.md promises only what exists: make targets, environment variables, URLs."""

from pathlib import Path
import re

from django.urls import Resolver404, resolve
import pytest

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
# The files that read environment variables, and what reading one looks like in them.
ENV_READERS = [
    REPO / "datamate" / "settings.py",
    REPO / "datamate" / "supervisor.py",
    REPO / "datamate" / "management" / "commands" / "seed_demo.py",
]
ENV_READ = re.compile(r"""(?:env\.\w+|os\.environ\.get)\(\s*["'](\w+)["']""")


def code_in_readme() -> str:
    """Fenced blocks and inline code: where commands and paths are, not prose."""
    fenced = re.findall(r"^```\w*\n(.*?)^```", README, re.MULTILINE | re.DOTALL)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", README, flags=re.MULTILINE | re.DOTALL))
    return "\n".join(fenced + inline)


def configuration_table() -> list[str]:
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE)


def test_every_make_target_exists():
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([\w.-]+):", makefile, re.MULTILINE))
    used = set(re.findall(r"\bmake ([a-z][\w-]*)", code_in_readme()))
    assert {"run", "test"} <= used
    assert used <= targets, f"README mentions make targets the Makefile lacks: {used - targets}"


def test_configuration_table_matches_the_code():
    documented = configuration_table()
    read = {name for path in ENV_READERS for name in ENV_READ.findall(path.read_text())}
    assert set(documented) == read, (
        f"documented but never read: {set(documented) - read}; read but undocumented: {read - set(documented)}"
    )


def api_paths() -> list[str]:
    paths = re.findall(r"`((?:/api/|/healthz)[^`\s]*)`", README)
    # Placeholders become sample values: node keys are identifiers, everything else an id.
    samples = {"key": "clean", "request_id": "0" * 32}
    return sorted({re.sub(r"\{(\w+)\}", lambda m: samples.get(m.group(1), "1"), path.split("?")[0]) for path in paths})


def test_readme_lists_the_api():
    assert len(api_paths()) >= 15


@pytest.mark.parametrize("path", api_paths())
def test_api_path_resolves(path):
    try:
        resolve(path)
    except Resolver404:
        pytest.fail(f"README documents {path}, which no URL pattern matches")
