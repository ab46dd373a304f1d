"""Websocket routes. The run consumers arrive with the execution engine."""

websocket_urlpatterns: list = []
