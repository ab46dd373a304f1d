"""Every dataset test gets its own storage root and import root (real folders, real files)."""

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = str(root)
    return root


@pytest.fixture
def import_root(settings, tmp_path) -> Path:
    root = tmp_path / "imports"
    root.mkdir()
    settings.DATAMATE_IMPORT_ROOTS = [str(root)]
    return root


def stored_files(root: Path) -> list[str]:
    """Every file under the storage root, relative to it."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())
