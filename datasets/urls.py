"""API routes of datasets (datamate/urls.py includes them under api/)."""

from rest_framework.routers import SimpleRouter

from datasets.api import DatasetVersionViewSet, DatasetViewSet

router = SimpleRouter()
router.register("datasets", DatasetViewSet, basename="dataset")
router.register(r"datasets/(?P<dataset_pk>\d+)/versions", DatasetVersionViewSet, basename="dataset-version")

urlpatterns = router.urls
