import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from datamate.runtime_files import demo_password_file
from datasets import services as dataset_services
from pipelines import services as pipeline_services

DEMO_USERNAME = "demo"


def demo_password() -> str:
    """DEMO_PASSWORD if set, else the password generated on the first run.

    Either way it is kept in var/demo_password (mode 0600) so `manage.py up` can show it.
    """
    path = demo_password_file(settings.VAR_DIR)
    password = os.environ.get("DEMO_PASSWORD", "")
    if not password and path.exists():
        password = path.read_text().strip()
        if password:
            return password
    password = password or secrets.token_urlsafe(12)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(password + "\n")
    path.chmod(0o600)  # O_CREAT's mode does not apply to a file that already existed
    return password


class Command(BaseCommand):
    help = "Create or update the demo superuser and the demo pipelines. Safe to run again."

    def handle(self, *args, **options):
        password = demo_password()
        with transaction.atomic():
            user, _ = get_user_model().objects.get_or_create(username=DEMO_USERNAME)
            user.is_active = user.is_staff = user.is_superuser = True
            user.set_password(password)
            user.save()
            demo_pipelines = pipeline_services.create_demo_pipelines(user)
            dataset = dataset_services.create_demo_dataset(user)
        self.stdout.write(f"Login: {DEMO_USERNAME} / {password}")
        self.stdout.write(f"Demo pipelines: {demo_pipelines}")
        self.stdout.write(f"Demo dataset: {dataset.name} ({dataset.versions.count()} version)")
