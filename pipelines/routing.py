"""Websocket routes (mounted by datamate/asgi.py behind AuthMiddlewareStack)."""

from django.urls import path

from pipelines.consumers import RunConsumer

websocket_urlpatterns = [
    path("ws/runs/<int:run_id>/", RunConsumer.as_asgi()),
]
