from django.apps import AppConfig


class DatamateConfig(AppConfig):
    """The project package as an app, so it can own project-wide commands (`up`, `seed_demo`)."""

    name = "datamate"
    verbose_name = "DataMate"
