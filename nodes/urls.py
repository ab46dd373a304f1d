"""API routes of saved tasks and secrets (datamate/urls.py includes them under api/)."""

from rest_framework.routers import SimpleRouter

router = SimpleRouter()
# --- saved tasks (register here) ---
from nodes.saved_tasks_api import SavedTaskViewSet  # noqa: E402

router.register("saved-tasks", SavedTaskViewSet, basename="saved-task")

# --- secrets (register here) ---
from nodes.secrets_api import SecretViewSet  # noqa: E402

router.register("secrets", SecretViewSet, basename="secret")

urlpatterns = router.urls
