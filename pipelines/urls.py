from rest_framework.routers import DefaultRouter

from nodes.operators.api import OperatorViewSet
from pipelines.api import NodeTypeViewSet, PipelineViewSet, TemplateViewSet
from pipelines.runs_api import NodeTestViewSet, PipelineNodeViewSet, PipelineRunViewSet, RunViewSet
from pipelines.schedules_api import PipelineScheduleViewSet, ScheduleToolsViewSet

router = DefaultRouter()
# No `<route>.json` twins: their `format` argument made every extra action answer 500, and
# the other apps' routers have none either (`?format=` still picks a renderer).
router.include_format_suffixes = False
router.register("pipelines", PipelineViewSet, basename="pipeline")
router.register("templates", TemplateViewSet, basename="template")
router.register("node-types", NodeTypeViewSet, basename="node-type")
router.register("operators", OperatorViewSet, basename="operator")
router.register("runs", RunViewSet, basename="run")
router.register(r"pipelines/(?P<pipeline_pk>\d+)/runs", PipelineRunViewSet, basename="pipeline-run")
router.register(r"pipelines/(?P<pipeline_pk>\d+)/nodes", PipelineNodeViewSet, basename="pipeline-node")
router.register("node-tests", NodeTestViewSet, basename="node-test")
router.register(r"pipelines/(?P<pipeline_pk>\d+)/schedules", PipelineScheduleViewSet, basename="pipeline-schedule")
router.register("schedules", ScheduleToolsViewSet, basename="schedule")

urlpatterns = router.urls
