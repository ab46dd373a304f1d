"""A Data Synthesis or Data Annotation node's `base_url` turned against the server's network.

Any author can type a `base_url`, and with a stored secret (`api_key_secret`) no key-host
limit applies: so the URL itself is checked like a Data Collection URL (nodes/fetch.py,
under DATAMATE_LLM_ALLOWED_HOSTS), its name resolved once, and every request sent to the
checked address. A model server on loopback (Ollama, vLLM) stays usable once an
administrator lists its address. Against the real chat-completions server of the tests on
127.0.0.1 (tests/chat_server.py).
"""

from __future__ import annotations

import socket

import pytest

from nodes import llm, secrets
from nodes.execution import NodeFailed
from tests.chat_server import ChatServer

KEY = "sk-owner-secret-5"
SETTING = "DATAMATE_LLM_ALLOWED_HOSTS"


@pytest.fixture
def server():
    with ChatServer() as running:
        yield running


@pytest.fixture
def allow(settings):
    def set_allowlist(*entries: str) -> None:
        settings.DATAMATE_LLM_ALLOWED_HOSTS = list(entries)

    return set_allowlist


@pytest.fixture
def owner(alice):
    secrets.create_secret(owner=alice, name="llm", value=KEY)
    return alice


def chat_settings(base_url: str, owner) -> llm.ChatSettings:
    config = {"base_url": base_url, "model": "m", "api_key_secret": "llm", "max_retries": 0, "timeout_seconds": 3}
    return llm.ChatSettings.from_config(config, owner.pk)


def ask(chat: llm.ChatSettings) -> str:
    with llm.ChatClient(chat) as client:
        return client.complete([{"role": "user", "content": "hi"}]).content


INTERNAL = [
    ("loopback", "127.0.0.1", "a loopback address"),
    ("other-loopback", "127.0.0.2", "a loopback address"),
    ("ipv6-loopback", "[::1]", "a loopback address"),
    ("cloud-metadata", "169.254.169.254", "a link-local address"),
    ("private-10", "10.0.0.1", "a private address"),
    ("private-172", "172.16.0.1", "a private address"),
    ("private-192", "192.168.1.1", "a private address"),
    ("unique-local-ipv6", "[fd00::1]", "a private address"),
    ("link-local-ipv6", "[fe80::1]", "a link-local address"),
    ("ipv4-mapped", "[::ffff:127.0.0.1]", "a loopback address"),
    ("unspecified", "0.0.0.0", "an unspecified address"),
]


@pytest.mark.parametrize(("name", "host", "problem"), INTERNAL, ids=[case[0] for case in INTERNAL])
def test_an_internal_address_is_refused_when_the_pipeline_is_saved(allow, name, host, problem):
    allow("*")
    errors = llm.check_config({"base_url": f"http://{host}:11434/v1", "model": "m"}, needs_endpoint=True)
    assert [error.field for error in errors] == ["base_url"]
    assert problem in errors[0].message and f"refused (allow its network in {SETTING})" in errors[0].message


def test_a_host_outside_the_allowlist_is_refused(allow):
    allow("api.openai.com", "*.openai.azure.com")
    assert llm.check_config({"base_url": "https://api.openai.com/v1"}, needs_endpoint=True) == []
    assert llm.check_config({"base_url": "https://me.openai.azure.com/v1"}, needs_endpoint=True) == []
    [error] = llm.check_config({"base_url": "https://models.evil.example/v1"}, needs_endpoint=True)
    assert error.field == "base_url" and f"host models.evil.example is not allowed ({SETTING})" in error.message


def test_a_stored_secret_is_not_sent_to_a_name_that_resolves_to_loopback(server, owner, allow):
    allow("*")  # the default: any public host
    chat = chat_settings(server.base_url.replace("127.0.0.1", "localhost"), owner)
    with pytest.raises(NodeFailed) as refused:
        ask(chat)
    message = str(refused.value)
    assert message.startswith("base_url: ") and "localhost resolves to 127.0.0.1, a loopback address" in message
    assert KEY not in message
    assert server.calls == 0


def test_a_templated_base_url_is_checked_when_the_run_resolves_it(server, owner, allow):
    allow("*")
    # check_config leaves templates to the run; the client still refuses what they resolve to.
    assert llm.check_config({"base_url": "{{ params.url }}", "model": "m"}, needs_endpoint=True) == []
    with pytest.raises(NodeFailed, match=r"^base_url: .*127\.0\.0\.1 is a loopback address; refused"):
        ask(chat_settings(server.base_url, owner))
    assert server.calls == 0


def test_a_local_model_server_works_once_its_address_is_allowed(server, owner, allow):
    allow("*", "127.0.0.1")
    assert ask(chat_settings(server.base_url, owner)) == "reply to: hi"
    assert ask(chat_settings(server.base_url.replace("127.0.0.1", "localhost"), owner)) == "reply to: hi"
    assert server.authorizations == [f"Bearer {KEY}"] * 2
    # Only that address: the rest of loopback stays refused.
    with pytest.raises(NodeFailed, match=r"127\.0\.0\.2 is a loopback address"):
        ask(chat_settings(server.base_url.replace("127.0.0.1", "127.0.0.2"), owner))


def test_a_name_is_resolved_once_and_requests_go_to_the_checked_address(server, owner, allow, monkeypatch):
    allow("*", "127.0.0.1")
    real = socket.getaddrinfo
    answers = {"model.test": "127.0.0.1"}

    def resolver(host, port, *args, **kwargs):
        # The machine's resolver, as a DNS server that changes its answer would drive it.
        if host in answers:
            return real(answers[host], port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    base_url = server.base_url.replace("127.0.0.1", "model.test")
    with llm.ChatClient(chat_settings(base_url, owner)) as client:
        answers["model.test"] = "169.254.169.254"  # rebinding after the check
        assert client.complete([{"role": "user", "content": "one"}]).content == "reply to: one"
        assert client.complete([{"role": "user", "content": "two"}]).content == "reply to: two"
    assert server.calls == 2
    # A fresh node resolves again and is refused.
    with pytest.raises(NodeFailed, match=r"model\.test resolves to 169\.254\.169\.254, a link-local address"):
        ask(chat_settings(base_url, owner))
    assert server.calls == 2


def test_a_bad_allowlist_entry_is_named(allow):
    allow("not a host")
    [error] = llm.check_config({"base_url": "https://api.openai.com/v1"}, needs_endpoint=True)
    assert error.field == "base_url" and f"{SETTING}: 'not a host' is not a host name" in error.message
