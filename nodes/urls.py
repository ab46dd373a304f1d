"""API routes of saved tasks and secrets (datamate/urls.py includes them under api/)."""

from rest_framework.routers import SimpleRouter

router = SimpleRouter()
# --- saved tasks (register here) ---
# --- secrets (register here) ---

urlpatterns = router.urls
