"""`manage.py seed_demo`: the demo login `make run` prints, stable across runs."""

import io
import re
import stat

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings
import pytest


@pytest.fixture
def var_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    with override_settings(VAR_DIR=tmp_path):
        yield tmp_path


def seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def login_password(output: str) -> str:
    return re.search(r"^Login: demo / (\S+)$", output, re.MULTILINE).group(1)


def test_generates_a_password_once_and_reuses_it(db, var_dir):
    first = seed()
    second = seed()

    password = login_password(first)
    assert login_password(second) == password
    assert (var_dir / "demo_password").read_text().strip() == password
    assert stat.S_IMODE((var_dir / "demo_password").stat().st_mode) == 0o600
    user = get_user_model().objects.get(username="demo")
    assert user.is_superuser and user.is_staff and user.check_password(password)
    demo_pipelines = re.search(r"^Demo pipelines: (\d+)$", first, re.MULTILINE).group(1)
    assert re.search(rf"^Demo pipelines: {demo_pipelines}$", second, re.MULTILINE)


def test_demo_password_from_the_environment_wins(db, var_dir, monkeypatch):
    seed()
    monkeypatch.setenv("DEMO_PASSWORD", "chosen-by-me")

    assert login_password(seed()) == "chosen-by-me"
    assert get_user_model().objects.get(username="demo").check_password("chosen-by-me")
    # `manage.py up` shows the file, so it must follow the password actually set.
    assert (var_dir / "demo_password").read_text().strip() == "chosen-by-me"
