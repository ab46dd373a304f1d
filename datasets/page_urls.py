"""Server-rendered dataset pages (datamate/urls.py includes them at the site root)."""

from django.urls import path

from datasets import views

app_name = "dataset_pages"

urlpatterns = [
    path("datasets/", views.dataset_list, name="dataset-list"),
    path("datasets/<int:dataset_id>/", views.dataset_detail, name="dataset-detail"),
]
