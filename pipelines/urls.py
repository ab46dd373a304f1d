from rest_framework.routers import DefaultRouter

from pipelines.api import NodeTypeViewSet, PipelineViewSet, TemplateViewSet

router = DefaultRouter()
router.register("pipelines", PipelineViewSet, basename="pipeline")
router.register("templates", TemplateViewSet, basename="template")
router.register("node-types", NodeTypeViewSet, basename="node-type")

urlpatterns = router.urls
