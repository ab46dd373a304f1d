import sys

from django.core.management.base import BaseCommand
from django.db import connections

from datamate import supervisor


class Command(BaseCommand):
    help = (
        "Run DataMate on this machine: a private redis-server (unless REDIS_URL is set), "
        "the web server, a Celery worker and Celery beat. Ctrl-C stops them all."
    )

    def handle(self, *args, **options):
        self.check_migrations()
        connections.close_all()  # the supervisor itself needs no database connection
        exit_code = supervisor.run()
        if exit_code:
            sys.exit(exit_code)
