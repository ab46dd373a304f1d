"""The OpenAI-compatible client against a real local chat-completions server (tests/chat_server.py)."""

import itertools
import socket

import pytest

from nodes import llm
from nodes.execution import NodeFailed
from tests.chat_server import ChatServer


@pytest.fixture
def server():
    with ChatServer() as running:
        yield running


def client(server: ChatServer, **settings) -> llm.ChatClient:
    return llm.ChatClient(llm.ChatSettings(base_url=server.base_url, model="test-model", **settings))


def gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(times)]


def test_a_completion_sends_model_messages_and_options_and_counts_tokens(server):
    with client(server, api_key="sk-test-1", temperature=0.2, max_tokens=50) as chat:
        completion = chat.complete(
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there world"}],
            json_mode=True,
        )
    assert completion.content == '{"text": "reply to: hello there world"}'
    assert (completion.prompt_tokens, completion.completion_tokens, completion.retries) == (5, 6, 0)
    body = server.bodies[0]
    assert body["model"] == "test-model"
    assert body["messages"][1] == {"role": "user", "content": "hello there world"}
    assert (body["temperature"], body["max_tokens"]) == (0.2, 50)
    assert body["response_format"] == {"type": "json_object"}
    assert server.authorizations == ["Bearer sk-test-1"]


def test_without_a_key_no_authorization_header_is_sent_and_text_mode_has_no_response_format(server):
    with client(server) as chat:
        assert chat.complete([{"role": "user", "content": "hi"}]).content == "reply to: hi"
    assert server.authorizations == [None]
    assert "response_format" not in server.bodies[0]


def test_429_is_retried_after_the_wait_that_retry_after_asks_for(server):
    server.fail_first, server.fail_status, server.retry_after = 2, 429, "1"
    with client(server, backoff=0.01) as chat:
        completion = chat.complete([{"role": "user", "content": "hi"}])
    assert completion.retries == 2
    assert server.calls == 3
    assert all(gap >= 0.95 for gap in gaps(server.call_times))


def test_5xx_is_retried_with_exponential_backoff(server):
    server.fail_first, server.fail_status = 3, 500
    with client(server, backoff=0.1, max_retries=3) as chat:
        completion = chat.complete([{"role": "user", "content": "hi"}])
    assert completion.content == "reply to: hi" and completion.retries == 3
    assert server.calls == 4
    # Each wait is between half and all of 0.1 s doubled per retry (jitter).
    for attempt, gap in enumerate(gaps(server.call_times)):
        assert 0.1 * 2**attempt / 2 - 0.01 <= gap < 0.1 * 2**attempt + 0.3


def test_a_request_that_keeps_failing_is_a_counted_failure_not_a_crash(server):
    server.fail_first, server.fail_status = 100, 503
    with client(server, backoff=0, max_retries=2) as chat, pytest.raises(llm.RequestFailed) as failure:
        chat.complete([{"role": "user", "content": "hi"}])
    assert (failure.value.reason, failure.value.retries) == ("http_503", 2)
    assert "503" in failure.value.message and "try again later" in failure.value.message
    assert server.calls == 3


def test_a_client_error_is_not_retried(server):
    server.fail_first, server.fail_status = 1, 400
    with client(server, backoff=0) as chat, pytest.raises(llm.RequestFailed) as failure:
        chat.complete([{"role": "user", "content": "hi"}])
    assert failure.value.reason == "http_400"
    assert server.calls == 1


def test_a_refused_key_fails_the_node_naming_the_field_and_never_showing_the_key(server):
    server.fail_first, server.fail_status = 1, 401
    server.fail_message = "Incorrect API key provided: sk-very-secret-9"
    with client(server, api_key="sk-very-secret-9", key_field="api_key_secret") as chat:
        with pytest.raises(llm.EndpointUnusable) as refused:
            chat.complete([{"role": "user", "content": "hi"}])
        assert "sk-very-secret-9" not in repr(chat.settings)
    message = str(refused.value)
    assert message.startswith("api_key_secret: the endpoint refused the key")
    assert "401" in message and "sk-very-secret-9" not in message
    assert server.calls == 1


def test_a_wrong_base_url_fails_the_node_naming_base_url(server):
    chat = llm.ChatClient(llm.ChatSettings(base_url=server.base_url + "/nope", model="m"))
    with chat, pytest.raises(llm.EndpointUnusable, match=r"^base_url: POST .* answered 404"):
        chat.complete([{"role": "user", "content": "hi"}])


def test_a_slow_answer_times_out_and_is_retried(server):
    server.delay = 0.5
    with client(server, timeout=0.1, max_retries=1, backoff=0) as chat, pytest.raises(llm.RequestFailed) as failure:
        chat.complete([{"role": "user", "content": "hi"}])
    assert failure.value.reason == "timeout"
    assert server.calls == 2


def test_nothing_listening_fails_the_node_naming_base_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    chat = llm.ChatClient(llm.ChatSettings(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=1, backoff=0))
    with chat, pytest.raises(llm.EndpointUnusable, match=r"^base_url: cannot connect"):
        chat.complete([{"role": "user", "content": "hi"}])


def test_requests_run_concurrently_but_never_more_than_the_limit_and_come_back_in_order(server):
    server.delay = 0.2
    finished_reports = []
    with client(server, concurrency=3) as chat:
        groups = list(
            llm.map_concurrently(
                [f"prompt {n}" for n in range(12)],
                lambda prompt: chat.complete([{"role": "user", "content": prompt}]).content,
                concurrency=3,
                on_done=finished_reports.append,
                group_size=5,
            )
        )
    assert server.max_in_flight == 3
    assert [len(group) for group in groups] == [5, 5, 2]
    assert [result for group in groups for _, result in group] == [f"reply to: prompt {n}" for n in range(12)]
    assert finished_reports[-1] == 12 and finished_reports == sorted(finished_reports)


def test_a_failed_request_comes_back_as_its_failure_and_the_others_carry_on(server):
    server.answer = lambda prompt, body: "{not json" if prompt == "b" else '{"ok": true}'
    with client(server) as chat:

        def work(prompt):
            return llm.parse_json_object(chat.complete([{"role": "user", "content": prompt}], json_mode=True).content)

        (group,) = llm.map_concurrently(["a", "b", "c"], work, concurrency=2)
    outcomes = dict(group)
    assert outcomes["a"] == {"ok": True} and outcomes["c"] == {"ok": True}
    assert isinstance(outcomes["b"], llm.RequestFailed) and outcomes["b"].reason == "invalid_json"
    assert outcomes["b"].reply == "{not json"


def test_parse_json_object():
    assert llm.parse_json_object('```json\n{"a": 1}\n```') == {"a": 1}
    with pytest.raises(llm.RequestFailed, match="not JSON"):
        llm.parse_json_object("Sure! Here it is: a=1")
    with pytest.raises(llm.RequestFailed, match="not an object"):
        llm.parse_json_object("[1, 2]")


# --- where the key comes from ---------------------------------------------------------


@pytest.mark.parametrize("name", ["DATABASE_URL", "SECRET_KEY", "PATH"])
def test_only_allowed_environment_variables_can_be_a_key(name, monkeypatch, settings):
    settings.DATAMATE_LLM_KEY_ENV_VARS = ["OPENAI_API_KEY"]
    monkeypatch.setenv(name, "server-only-value-7")
    errors = llm.check_config({"base_url": "https://x.example/v1", "api_key_env": name}, needs_endpoint=True)
    assert [(error.field, error.message) for error in errors] == [
        ("api_key_env", f"{name!r} is not an allowed API key variable (DATAMATE_LLM_KEY_ENV_VARS: OPENAI_API_KEY)")
    ]
    with pytest.raises(NodeFailed) as refused:
        llm.api_key({"api_key_env": name}, owner_id=0)
    assert str(refused.value).startswith("api_key_env: ")
    assert "server-only-value-7" not in str(refused.value)


def test_an_allowed_environment_variable_is_sent_as_the_bearer_key(server, monkeypatch, settings):
    settings.DATAMATE_LLM_KEY_ENV_VARS = ["OPENAI_API_KEY", "LOCAL_LLM_KEY"]
    settings.DATAMATE_LLM_KEY_HOSTS = ["127.0.0.1"]
    monkeypatch.setenv("LOCAL_LLM_KEY", "sk-from-env")
    chat = llm.ChatSettings.from_config(
        {"base_url": server.base_url, "model": "m", "api_key_env": "LOCAL_LLM_KEY"}, owner_id=0
    )
    with llm.ChatClient(chat) as running:
        running.complete([{"role": "user", "content": "hi"}])
    assert server.authorizations == ["Bearer sk-from-env"]
    monkeypatch.delenv("LOCAL_LLM_KEY")
    with pytest.raises(NodeFailed, match=r"^api_key_env: LOCAL_LLM_KEY is not set"):
        llm.api_key({"api_key_env": "LOCAL_LLM_KEY"}, owner_id=0)


def test_config_checks_name_their_fields():
    errors = llm.check_config({"api_key_env": "OPENAI_API_KEY", "api_key_secret": "k"}, needs_endpoint=True)
    assert [error.field for error in errors] == ["base_url", "api_key_secret"]
    errors = llm.check_config({"base_url": "file:///etc/passwd"}, needs_endpoint=True)
    assert [(error.field, error.message) for error in errors] == [
        ("base_url", "must be an http:// or https:// URL, e.g. https://api.openai.com/v1")
    ]
    assert llm.check_config({"base_url": "{{ params.url }}"}, needs_endpoint=True) == []


def test_a_server_key_is_only_sent_to_its_hosts(server, monkeypatch, settings):
    settings.DATAMATE_LLM_KEY_ENV_VARS = ["OPENAI_API_KEY"]
    settings.DATAMATE_LLM_KEY_HOSTS = ["api.openai.com"]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-shared-by-the-server")
    config = {"base_url": server.base_url, "model": "m", "api_key_env": "OPENAI_API_KEY"}
    message = "OPENAI_API_KEY may only be sent to the hosts in DATAMATE_LLM_KEY_HOSTS (api.openai.com), not '127.0.0.1'"
    errors = llm.check_config(config, needs_endpoint=True)
    assert [(error.field, error.message) for error in errors] == [("api_key_env", message)]
    with pytest.raises(NodeFailed, match=r"^api_key_env: OPENAI_API_KEY may only be sent"):
        llm.ChatSettings.from_config(config, owner_id=0)
    assert server.authorizations == []  # nothing was sent
