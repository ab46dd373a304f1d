"""docker-compose.yml and Dockerfile run what exists in this project, as `manage.py up` does."""

import importlib
import importlib.util
from pathlib import Path
import re
import shlex

from celery import Celery
from django.core.management import get_commands
from django.utils.module_loading import import_string
import pytest
import yaml

from datamate.supervisor import service_commands

REPO = Path(__file__).resolve().parent.parent
COMPOSE_TEXT = (REPO / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
SETTINGS_SOURCE = (REPO / "datamate" / "settings.py").read_text()
APP_SERVICES = ("web", "worker", "beat")


def shell_steps(service: str) -> list[list[str]]:
    """The service's command as argv lists, one per `&&` step of an `sh -c` wrapper."""
    command = SERVICES[service]["command"]
    if isinstance(command, str):
        command = shlex.split(command)
    if command[:2] != ["sh", "-c"]:
        return [command]
    steps = [shlex.split(step) for step in command[2].split("&&")]
    return [step[1:] if step[0] == "exec" else step for step in steps]


def read_in_settings(name: str) -> bool:
    return re.search(rf"""["']{name}["']""", SETTINGS_SOURCE) is not None


def test_services():
    assert {"postgres", "redis", *APP_SERVICES} <= set(SERVICES)
    assert SERVICES["postgres"]["image"].startswith("postgres:16")
    assert "healthcheck" in SERVICES["postgres"]
    assert SERVICES["redis"]["image"].startswith("redis:7")


def test_web_migrates_then_serves_the_asgi_application():
    migrate, serve = shell_steps("web")
    assert migrate[:3] == ["python", "manage.py", "migrate"]
    assert (REPO / "manage.py").exists() and "migrate" in get_commands()
    assert serve[0] == "daphne" and importlib.util.find_spec("daphne")
    module, attribute = serve[-1].split(":")
    assert hasattr(importlib.import_module(module), attribute)


@pytest.mark.parametrize("service", ["worker", "beat"])
def test_celery_commands_use_the_project_app(service):
    (command,) = shell_steps(service)
    assert command[:3] == ["celery", "-A", "datamate"] and importlib.util.find_spec("celery")
    assert isinstance(importlib.import_module("datamate").celery_app, Celery)
    if "--scheduler" in command:
        import_string(command[command.index("--scheduler") + 1].replace(":", "."))


@pytest.mark.parametrize("service", APP_SERVICES)
def test_same_commands_as_the_supervisor(service):
    """`manage.py up` runs `python -m <the compose command>`, plus only local options."""
    compose_command = shell_steps(service)[-1]
    supervisor_command = service_commands("0.0.0.0", 8000, 2, REPO / "var")[service][2:]
    assert supervisor_command[: len(compose_command)] == compose_command


@pytest.mark.parametrize("service", APP_SERVICES)
def test_environment_is_read_by_settings(service):
    names = SERVICES[service]["environment"]
    unknown = [name for name in names if not read_in_settings(name)]
    assert not unknown, f"{service} sets variables that datamate/settings.py never reads: {unknown}"
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"} <= set(names)


def test_every_substituted_variable_is_a_setting_or_a_postgres_one():
    names = set(re.findall(r"\$\{(\w+)", COMPOSE_TEXT))
    unknown = [name for name in names if not (read_in_settings(name) or name.startswith("POSTGRES_"))]
    assert not unknown, f"docker-compose.yml uses variables nothing reads: {unknown}"


def test_dockerfile_installs_the_requirements():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", dockerfile, re.MULTILINE)
    assert re.search(r"pip install .*-r requirements\.txt", dockerfile)
    for service in APP_SERVICES:
        assert SERVICES[service]["build"] == "."
