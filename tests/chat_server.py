"""A real OpenAI-compatible chat-completions server for the tests, on 127.0.0.1.

`POST /v1/chat/completions` answers deterministically from the request: by default the
reply is "reply to: <last user message>" (in JSON mode, {"text": that}); a test may set
`answer(prompt, body) -> str` instead. Usage counts words: prompt_tokens over every
message, completion_tokens over the reply. The server counts calls, records each request
body and Authorization header, and the most requests it had in flight at once. It can be
told to answer `fail_status` (with `retry_after`, `fail_message`) to the first `fail_first` calls, to take
`delay` seconds per answer, or (through `answer`) to reply with text that is not JSON.
Worker processes reach it too: pass `server.base_url` as a node's base_url.
"""

from __future__ import annotations

from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import threading
import time
from typing import Any


def default_answer(prompt: str, body: dict[str, Any]) -> str:
    text = f"reply to: {prompt}"
    if body.get("response_format", {}).get("type") == "json_object":
        return json.dumps({"text": text})
    return text


class ChatServer:
    def __init__(self):
        self.answer: Callable[[str, dict[str, Any]], str] = default_answer
        self.fail_first = 0
        self.fail_status = 429
        self.retry_after: str | None = None
        self.fail_message = "try again later"
        self.delay = 0.0
        self.calls = 0
        self.call_times: list[float] = []
        self.bodies: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                server._handle(self)

            def log_message(self, format, *args):  # quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="chat-server", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> ChatServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def prompts(self) -> list[str]:
        return [_last_user_message(body) for body in self.bodies]

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length)
        with self._lock:
            self.calls += 1
            number = self.calls
            self.call_times.append(time.monotonic())
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.authorizations.append(request.headers.get("Authorization"))
        try:
            status, payload, headers = self._respond(request.path, raw, number)
        finally:
            # Out of flight before the answer leaves: the client may send its next request
            # as soon as it has read this one.
            with self._lock:
                self.in_flight -= 1
        self._send(request, status, payload, headers)

    def _respond(self, path: str, raw: bytes, number: int) -> tuple[int, Any, dict[str, str]]:
        if path != "/v1/chat/completions":
            return 404, {"error": {"message": f"no route {path}"}}, {}
        body = json.loads(raw)
        with self._lock:
            self.bodies.append(body)
        if self.delay:
            time.sleep(self.delay)
        if number <= self.fail_first:
            headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
            return self.fail_status, {"error": {"message": self.fail_message}}, headers
        content = self.answer(_last_user_message(body), body)
        prompt_tokens = sum(len(str(message.get("content", "")).split()) for message in body["messages"])
        completion_tokens = len(content.split())
        completion = {
            "id": f"chatcmpl-{number}",
            "object": "chat.completion",
            "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        return 200, completion, {}

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str] | None = None):
        data = json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(data)


def _last_user_message(body: dict[str, Any]) -> str:
    users = [message for message in body.get("messages", []) if message.get("role") == "user"]
    return str(users[-1].get("content", "")) if users else ""
