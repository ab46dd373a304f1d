from rest_framework.routers import DefaultRouter

from pipelines.api import NodeTypeViewSet, PipelineViewSet, TemplateViewSet
from pipelines.runs_api import NodeTestViewSet, PipelineNodeViewSet, PipelineRunViewSet, RunViewSet

router = DefaultRouter()
router.register("pipelines", PipelineViewSet, basename="pipeline")
router.register("templates", TemplateViewSet, basename="template")
router.register("node-types", NodeTypeViewSet, basename="node-type")
router.register("runs", RunViewSet, basename="run")
router.register(r"pipelines/(?P<pipeline_pk>\d+)/runs", PipelineRunViewSet, basename="pipeline-run")
router.register(r"pipelines/(?P<pipeline_pk>\d+)/nodes", PipelineNodeViewSet, basename="pipeline-node")
router.register("node-tests", NodeTestViewSet, basename="node-test")

urlpatterns = router.urls
