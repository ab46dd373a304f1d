from django.db.models.signals import post_migrate
from django.dispatch import receiver
from simple_history.signals import pre_create_historical_record


@receiver(pre_create_historical_record)
def stamp_pipeline_version(sender, instance, history_instance, **kwargs):
    """Every history row written by `save_graph` carries the version number it belongs to."""
    if hasattr(history_instance, "pipeline_version"):
        history_instance.pipeline_version = getattr(instance, "_pipeline_version", None)


@receiver(post_migrate)
def install_builtin_templates(sender, app_config, **kwargs):
    if app_config.name == "pipelines":
        from pipelines.services import install_builtin_templates as install

        install()
