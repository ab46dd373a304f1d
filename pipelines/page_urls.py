"""Server-rendered pages (datamate/urls.py includes them at the site root)."""

from django.urls import path

from pipelines import designer_views, views

app_name = "pages"

urlpatterns = [
    path("pipelines/", views.pipeline_list, name="pipeline-list"),
    path("pipelines/new/", designer_views.new_pipeline, name="pipeline-new"),
    path("pipelines/<int:pipeline_id>/designer/", designer_views.designer, name="designer"),
    path("pipelines/<int:pipeline_id>/runs/", views.run_list, name="run-list"),
    path("pipelines/<int:pipeline_id>/runs/start/", views.start_run, name="run-start"),
    path("runs/<int:run_id>/", views.run_detail, name="run-detail"),
    path("runs/<int:run_id>/cancel/", views.cancel_run, name="run-cancel"),
    path("runs/<int:run_id>/rerun/", views.rerun, name="run-rerun"),
    path("templates/", views.template_list, name="template-list"),
    path("templates/<int:template_id>/use/", views.use_template, name="template-use"),
    path("templates/<int:template_id>/delete/", views.delete_template, name="template-delete"),
]
