"""Server-rendered pages (datamate/urls.py includes them at the site root)."""

from django.urls import path

from pipelines import views

app_name = "pages"

urlpatterns = [
    path("pipelines/", views.pipeline_list, name="pipeline-list"),
    path("pipelines/<int:pipeline_id>/runs/", views.run_list, name="run-list"),
    path("runs/<int:run_id>/", views.run_detail, name="run-detail"),
]
