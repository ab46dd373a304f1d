"""The OpenAI-compatible chat-completions client behind Data Synthesis and Data Annotation.

One request per record (or per sample of a record): `POST {base_url}/chat/completions`
with httpx. What a node user relies on:

- `base_url` may only name a host DATAMATE_LLM_ALLOWED_HOSTS allows (any public host by
  default). Its name is resolved once per node, every address is checked like a Data
  Collection URL (`nodes/fetch.py`: loopback, private, link-local … refused unless a listed
  network covers them), and every request goes to a checked address, so a DNS answer that
  changes later (rebinding) cannot turn the node against the server's own network.
- The API key comes from a stored secret (`api_key_secret`, see `nodes/secrets.py`) or an
  environment variable (`api_key_env`) listed in DATAMATE_LLM_KEY_ENV_VARS; it is sent
  only as the Authorization header, and scrubbed from any text the endpoint sends back.
- 429, 5xx, timeouts and dropped connections are retried with exponential backoff (with
  jitter); a Retry-After (or retry-after-ms) header sets the wait instead.
- At most `concurrency` requests are in flight (a thread pool over one httpx connection
  pool); results come back in input order, a group of requests at a time, and progress
  (which is where a cancelled run stops) is reported as they finish.
- A request that still fails, or whose reply is not what was asked for, is a failure of
  that record: counted by reason with a few samples in the node's output (`Tally`), not a
  crash. What no record can get past (the key refused, the URL or model unknown, nothing
  listening) fails the node at once, naming the config field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
import concurrent.futures
from dataclasses import dataclass
import email.utils
import itertools
import os
import random
import re
import threading
import time
from typing import Any, TypeVar

from django.conf import settings
import httpx
import orjson

from nodes import fetch
from nodes.execution import NodeFailed
from nodes.expressions import has_template
from nodes.registry import ConfigError

#: Failures kept as samples per reason in a node's output.
SAMPLES_PER_REASON = 5
SAMPLE_CHARS = 300
#: Requests sent to the pool at a time; their results are written before the next group.
GROUP_SIZE = 1000
#: Retry-After values above this are cut to it (a broken header must not stall a node for days).
MAX_RETRY_AFTER_SECONDS = 300.0
MAX_BACKOFF_SECONDS = 60.0
#: Judge the failure rate only once this many requests have finished.
MIN_REQUESTS_FOR_RATE = 20

#: Config properties shared by the LLM node types (each adds its own `model`).
CLIENT_PROPERTIES: dict[str, Any] = {
    "base_url": {
        "type": "string",
        "minLength": 1,
        "maxLength": 2000,
        "description": "OpenAI-compatible API root, e.g. https://api.openai.com/v1 (requests go to "
        "{base_url}/chat/completions).",
    },
    "api_key_env": {
        "type": "string",
        "minLength": 1,
        "maxLength": 200,
        "description": "Environment variable holding the API key; only names in DATAMATE_LLM_KEY_ENV_VARS.",
    },
    "api_key_secret": {
        "type": "string",
        "minLength": 1,
        "maxLength": 100,
        "description": "Name of one of your stored secrets (/api/secrets/) holding the API key.",
    },
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "max_tokens": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
    "concurrency": {
        "type": "integer",
        "minimum": 1,
        "maximum": 64,
        "default": 4,
        "description": "Requests in flight at most.",
    },
    "max_retries": {
        "type": "integer",
        "minimum": 0,
        "maximum": 20,
        "default": 3,
        "description": "Retries of a request after 429, 5xx, a timeout or a dropped connection.",
    },
    "backoff_seconds": {
        "type": "number",
        "minimum": 0,
        "maximum": 60,
        "default": 1.0,
        "description": "First retry delay; it doubles each retry. A Retry-After header wins.",
    },
    "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600, "default": 60},
    "max_failure_rate": {
        "type": "number",
        "minimum": 0,
        "maximum": 1,
        "default": 0.5,
        "description": "Fail the node when a larger share of its requests fail (after retries).",
    },
}


# --- errors ---------------------------------------------------------------------------


class RequestFailed(Exception):
    """One request (one record or sample) failed: counted and sampled, the node goes on."""

    def __init__(self, reason: str, message: str, *, reply: str | None = None, retries: int = 0):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.reply = reply
        self.retries = retries


class EndpointUnusable(NodeFailed):
    """No request can succeed (the key refused, the URL or model unknown, nothing listening)."""


# --- configuration --------------------------------------------------------------------


def check_config(config: dict[str, Any], *, needs_endpoint: bool) -> list[ConfigError]:
    """Design-time rules for the client fields (templated values are checked at run time)."""
    errors = []
    base_url = config.get("base_url")
    if needs_endpoint and not base_url:
        errors.append(ConfigError("base_url", "required to call a model, e.g. https://api.openai.com/v1"))
    elif isinstance(base_url, str) and not has_template(base_url):
        problem = url_problem(base_url) or endpoint_host_problem(base_url)
        if problem:
            errors.append(ConfigError("base_url", problem))
    if "api_key_env" in config and "api_key_secret" in config:
        errors.append(ConfigError("api_key_secret", "set at most one of api_key_env and api_key_secret"))
    name = config.get("api_key_env")
    if isinstance(name, str) and not has_template(name):
        problem = env_var_problem(name)
        base_url = config.get("base_url")
        if problem is None and isinstance(base_url, str) and not has_template(base_url):
            problem = env_key_host_problem(name, base_url)
        if problem:
            errors.append(ConfigError("api_key_env", problem))
    return errors


def url_problem(url: str) -> str | None:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        return f"not a valid URL: {error}"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return "must be an http:// or https:// URL, e.g. https://api.openai.com/v1"
    return None


ALLOWED_HOSTS_SETTING = "DATAMATE_LLM_ALLOWED_HOSTS"


def endpoint_allowlist() -> fetch.Allowlist:
    return fetch.Allowlist.parse(settings.DATAMATE_LLM_ALLOWED_HOSTS, ALLOWED_HOSTS_SETTING)


def endpoint_host_problem(base_url: str) -> str | None:
    """What refuses `base_url` before any DNS lookup: a host not allowed, or an address (a
    literal one, like 127.0.0.1) outside the allowed networks. Names are resolved at run time."""
    try:
        url = httpx.URL(base_url)
        policy = endpoint_allowlist()
        fetch.check_host(base_url, url, policy, ALLOWED_HOSTS_SETTING)
        if fetch.literal_address(url) is not None:
            fetch.checked_addresses(base_url, url, policy, ALLOWED_HOSTS_SETTING)
    except fetch.FetchError as error:
        return str(error)
    return None


def endpoint_addresses(base_url: str) -> list[fetch.Address]:
    """The checked addresses requests to `base_url` go to; raises EndpointUnusable naming base_url."""
    try:
        url = httpx.URL(base_url)
        policy = endpoint_allowlist()
        fetch.check_host(base_url, url, policy, ALLOWED_HOSTS_SETTING)
        return fetch.checked_addresses(base_url, url, policy, ALLOWED_HOSTS_SETTING)
    except fetch.FetchError as error:
        raise EndpointUnusable(f"base_url: {error}") from None


def env_var_problem(name: str) -> str | None:
    allowed = settings.DATAMATE_LLM_KEY_ENV_VARS
    if name not in allowed:
        listed = ", ".join(allowed) or "none"
        return f"{name!r} is not an allowed API key variable (DATAMATE_LLM_KEY_ENV_VARS: {listed})"
    return None


def env_key_host_problem(name: str, base_url: Any) -> str | None:
    """A key from the server's environment is shared by every pipeline author: it may only go
    to the hosts it is meant for (DATAMATE_LLM_KEY_HOSTS), never to a URL an author chose."""
    allowed = settings.DATAMATE_LLM_KEY_HOSTS
    try:
        host = httpx.URL(str(base_url)).host.lower() if base_url else ""
    except httpx.InvalidURL:
        host = ""
    if host in allowed:
        return None
    listed = ", ".join(allowed) or "none"
    return f"{name} may only be sent to the hosts in DATAMATE_LLM_KEY_HOSTS ({listed}), not {host or 'this URL'!r}"


def api_key(config: dict[str, Any], owner_id: int) -> tuple[str | None, str | None]:
    """(the key, the config field it came from); (None, None) for an endpoint without keys."""
    from nodes import secrets

    if "api_key_secret" in config:
        try:
            return secrets.reveal(owner_id, config["api_key_secret"]), "api_key_secret"
        except (secrets.SecretNotFound, secrets.SecretUnreadable) as error:
            raise NodeFailed(f"api_key_secret: {error}") from None
    if "api_key_env" in config:
        name = config["api_key_env"]
        problem = env_var_problem(name)
        if problem:
            raise NodeFailed(f"api_key_env: {problem}")
        value = os.environ.get(name)
        if not value:
            raise NodeFailed(f"api_key_env: {name} is not set in the worker's environment")
        problem = env_key_host_problem(name, config.get("base_url"))
        if problem:
            raise NodeFailed(f"api_key_env: {problem}")
        return value, "api_key_env"
    return None, None


@dataclass(frozen=True)
class ChatSettings:
    base_url: str
    model: str
    api_key: str | None = None
    #: The config field the key came from, named when the endpoint refuses it.
    key_field: str | None = None
    timeout: float = 60.0
    max_retries: int = 3
    backoff: float = 1.0
    temperature: float | None = None
    max_tokens: int | None = None
    concurrency: int = 4

    def __repr__(self) -> str:  # never the key
        return f"ChatSettings(base_url={self.base_url!r}, model={self.model!r})"

    @classmethod
    def from_config(cls, config: dict[str, Any], owner_id: int) -> ChatSettings:
        base_url = config.get("base_url")
        if not base_url:
            raise NodeFailed("base_url: required to call a model, e.g. https://api.openai.com/v1")
        problem = url_problem(base_url)
        if problem:
            raise NodeFailed(f"base_url: {problem}")
        key, key_field = api_key(config, owner_id)
        return cls(
            base_url=base_url.rstrip("/"),
            model=config["model"],
            api_key=key,
            key_field=key_field,
            timeout=float(config.get("timeout_seconds", 60)),
            max_retries=int(config.get("max_retries", 3)),
            backoff=float(config.get("backoff_seconds", 1.0)),
            temperature=config.get("temperature"),
            max_tokens=config.get("max_tokens"),
            concurrency=int(config.get("concurrency", 4)),
        )


# --- the client -----------------------------------------------------------------------


@dataclass(frozen=True)
class Completion:
    content: str
    prompt_tokens: int
    completion_tokens: int
    retries: int


class ChatClient:
    """Chat completions against one endpoint; safe to call from several threads at once."""

    def __init__(self, chat: ChatSettings, *, sleep: Callable[[float], None] = time.sleep):
        self.settings = chat
        self.url = f"{chat.base_url}/chat/completions"
        self._sleep = sleep
        # Resolved and checked once; requests go to these addresses, the last one that
        # answered first.
        self._addresses = endpoint_addresses(chat.base_url)
        self._addresses_lock = threading.Lock()
        headers = {"Authorization": f"Bearer {chat.api_key}"} if chat.api_key else {}
        self.http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(chat.timeout),
            limits=httpx.Limits(max_connections=chat.concurrency, max_keepalive_connections=chat.concurrency),
            follow_redirects=False,
        )

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        """POST to a checked address of the endpoint, trying the next one if it refuses the connection."""
        url = httpx.URL(self.url)
        addresses = list(self._addresses)
        for address in addresses:
            target, host_header, extensions = fetch.pinned(url, address)
            request = self.http.build_request("POST", target, json=body, headers=host_header, extensions=extensions)
            try:
                response = self.http.send(request)
            except httpx.ConnectError:
                if address is addresses[-1]:
                    raise
                continue
            if address is not addresses[0]:
                with self._addresses_lock:  # later requests start with the address that answers
                    self._addresses = [address, *(other for other in self._addresses if other != address)]
            return response
        raise AssertionError("unreachable: there is always a checked address")

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def complete(self, messages: list[dict[str, str]], *, json_mode: bool = False) -> Completion:
        """One completion, retried on 429/5xx/timeouts; raises RequestFailed or EndpointUnusable."""
        chat = self.settings
        body: dict[str, Any] = {"model": chat.model, "messages": messages}
        if chat.temperature is not None:
            body["temperature"] = chat.temperature
        if chat.max_tokens is not None:
            body["max_tokens"] = chat.max_tokens
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        for attempt in range(chat.max_retries + 1):
            wait = self._backoff(attempt)
            try:
                response = self._post(body)
            except httpx.TimeoutException:
                problem = RequestFailed("timeout", f"no answer within {chat.timeout:g} s")
            except httpx.ConnectError as error:
                problem = RequestFailed("connection", f"cannot connect to {self.url}: {self._scrub(str(error))}")
            except httpx.TransportError as error:
                problem = RequestFailed("connection", f"the connection failed: {self._scrub(str(error))}")
            else:
                if response.status_code == 200:
                    return self._completion(response, retries=attempt)
                problem = self._refusal(response)
                if not _retryable(response.status_code):
                    raise problem
                wait = _retry_after(response) or wait
            if attempt == chat.max_retries:
                problem.retries = attempt
                if problem.reason == "connection" and "cannot connect" in problem.message:
                    raise EndpointUnusable(f"base_url: {problem.message}")
                raise problem
            self._sleep(wait)
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        # Exponential with "equal jitter": many clients retrying together do not stay in step.
        delay = min(MAX_BACKOFF_SECONDS, self.settings.backoff * 2**attempt)
        return delay / 2 + random.uniform(0, delay / 2)

    def _refusal(self, response: httpx.Response) -> RequestFailed:
        """The failure an error status means; raises EndpointUnusable for the fatal ones."""
        status = response.status_code
        detail = self._scrub(_error_detail(response))
        where = f"POST {self.url} answered {status} {response.reason_phrase}"
        if status in (401, 403):
            field = self.settings.key_field or "api_key_secret"
            hint = "" if self.settings.key_field else " (no key is configured: set api_key_secret or api_key_env)"
            raise EndpointUnusable(f"{field}: the endpoint refused the key: {where}{hint}{detail}")
        if status == 404:
            raise EndpointUnusable(f"base_url: {where}: check base_url and model {self.settings.model!r}{detail}")
        return RequestFailed(f"http_{status}", f"{where}{detail}")

    def _completion(self, response: httpx.Response, *, retries: int) -> Completion:
        try:
            answer = response.json()
            content = answer["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise RequestFailed(
                "bad_response", "the answer is not a chat completion", reply=self._scrub(response.text), retries=retries
            ) from None
        if not isinstance(content, str):
            raise RequestFailed("bad_response", "the completion has no text content", retries=retries)
        usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
        return Completion(
            # The reply becomes records and failure samples: never with the key in it.
            content=self._scrub(content),
            prompt_tokens=_count(usage.get("prompt_tokens")),
            completion_tokens=_count(usage.get("completion_tokens")),
            retries=retries,
        )

    def _scrub(self, text: str) -> str:
        """Text from the endpoint, without the key (an endpoint may echo it back)."""
        key = self.settings.api_key
        return text.replace(key, "***") if key else text


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500 or status == 408


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds the endpoint asked us to wait (retry-after-ms, Retry-After seconds or date)."""
    millis = response.headers.get("retry-after-ms")
    raw = response.headers.get("retry-after")
    try:
        if millis is not None:
            return min(MAX_RETRY_AFTER_SECONDS, max(0.0, float(millis) / 1000))
        if raw is None:
            return None
        if raw.strip().replace(".", "", 1).isdigit():
            return min(MAX_RETRY_AFTER_SECONDS, float(raw))
        moment = email.utils.parsedate_to_datetime(raw)
    except (ValueError, TypeError):
        return None
    return min(MAX_RETRY_AFTER_SECONDS, max(0.0, moment.timestamp() - time.time()))


def _error_detail(response: httpx.Response) -> str:
    """The endpoint's own error message, shortened (OpenAI: {"error": {"message": ...}})."""
    try:
        data = response.json()
        message = data["error"]["message"] if isinstance(data.get("error"), dict) else data.get("error")
    except (ValueError, KeyError, TypeError, AttributeError):
        message = response.text
    text = " ".join(str(message or "").split())
    return f": {text[:SAMPLE_CHARS]}" if text else ""


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def parse_json_object(content: str) -> dict[str, Any]:
    """The JSON object a reply in JSON mode holds (a ```json fence around it is accepted);
    raises RequestFailed("invalid_json") otherwise."""
    fenced = _FENCE.match(content)
    try:
        value = orjson.loads(fenced.group(1) if fenced else content)
    except orjson.JSONDecodeError as error:
        raise RequestFailed("invalid_json", f"the reply is not JSON: {error}", reply=content) from None
    if not isinstance(value, dict):
        raise RequestFailed("invalid_json", "the reply is JSON but not an object", reply=content)
    return value


# --- running many requests ------------------------------------------------------------

Job = TypeVar("Job")
Result = TypeVar("Result")


def map_concurrently(
    jobs: Iterable[Job],
    work: Callable[[Job], Result],
    *,
    concurrency: int,
    on_done: Callable[[int], None] | None = None,
    group_size: int = GROUP_SIZE,
) -> Iterator[list[tuple[Job, Result | RequestFailed]]]:
    """Run `work` over the jobs in a pool of `concurrency` threads, a group at a time, and
    yield each group's (job, result or RequestFailed) in job order. `on_done(finished)` runs
    here, in the calling thread, as requests finish (the executor reports progress there,
    which raises if the run was cancelled). Any other exception stops everything."""
    iterator = iter(jobs)
    finished = 0
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="llm")
    try:
        while group := list(itertools.islice(iterator, group_size)):
            futures = [pool.submit(_capture, work, job) for job in group]
            pending = set(futures)
            while pending:
                done, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                finished += len(done)
                for future in done:
                    future.result()  # re-raises what _capture let through (EndpointUnusable, bugs)
                if on_done is not None:
                    on_done(finished)
            yield [(job, future.result()) for job, future in zip(group, futures, strict=True)]
    finally:
        # On a failure, a cancel or a timeout: drop queued requests; running ones end on their own.
        pool.shutdown(wait=False, cancel_futures=True)


def _capture(work: Callable[[Job], Result], job: Job) -> Result | RequestFailed:
    try:
        return work(job)
    except RequestFailed as failure:
        return failure


# --- what the node reports --------------------------------------------------------------


def shorten(value: Any, limit: int = SAMPLE_CHARS) -> Any:
    """A small copy of a record or a reply for a failure sample."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "…"
    if isinstance(value, dict):
        return {key: shorten(item, limit) for key, item in itertools.islice(value.items(), 20)}
    if value is None or isinstance(value, bool | int | float):
        return value
    text = orjson.dumps(value, default=str).decode()
    return value if len(text) <= limit else text[:limit] + "…"


class Tally:
    """Requests, retries, tokens and failures (by reason, with samples) of one execution.
    Thread-safe: pool threads may add to it."""

    def __init__(self):
        self.requests = 0
        self.retries = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.failures: dict[str, int] = {}
        self.samples: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def completed(self, completion: Completion) -> None:
        with self._lock:
            self.requests += 1
            self.retries += completion.retries
            self.prompt_tokens += completion.prompt_tokens
            self.completion_tokens += completion.completion_tokens

    def failed(self, failure: RequestFailed, *, index: int, record: dict[str, Any] | None = None) -> None:
        with self._lock:
            self.retries += failure.retries
            self.failures[failure.reason] = self.failures.get(failure.reason, 0) + 1
            kept = self.samples.setdefault(failure.reason, [])
            if len(kept) < SAMPLES_PER_REASON:
                sample: dict[str, Any] = {"index": index, "message": shorten(failure.message)}
                if failure.reply is not None:
                    sample["reply"] = shorten(failure.reply)
                if record is not None:
                    sample["record"] = shorten(record)
                kept.append(sample)

    @property
    def failed_count(self) -> int:
        return sum(self.failures.values())

    def check_rate(self, attempted: int, max_rate: float, *, final: bool = False) -> None:
        """Fail the node when too many requests failed (judged once enough have finished)."""
        failed = self.failed_count
        if not failed or (attempted < MIN_REQUESTS_FOR_RATE and not final):
            return
        if failed > max_rate * attempted or failed == attempted:
            reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(self.failures.items()))
            first = next(iter(self.samples.values()))[0]["message"]
            raise NodeFailed(
                f"max_failure_rate: {failed} of {attempted} requests failed ({reasons}), more than "
                f"{max_rate:.0%}; for example: {first}"
            )

    def report(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "retries": self.retries,
            "tokens": {
                "prompt": self.prompt_tokens,
                "completion": self.completion_tokens,
                "total": self.prompt_tokens + self.completion_tokens,
            },
            "failures": dict(sorted(self.failures.items())),
            "failure_samples": {reason: list(items) for reason, items in sorted(self.samples.items())},
        }

    @staticmethod
    def merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
        """One report from the reports of shards (sums; samples capped per reason)."""
        failures: dict[str, int] = {}
        samples: dict[str, list[dict[str, Any]]] = {}
        for report in reports:
            for reason, count in report.get("failures", {}).items():
                failures[reason] = failures.get(reason, 0) + count
            for reason, items in report.get("failure_samples", {}).items():
                kept = samples.setdefault(reason, [])
                kept.extend(items[: SAMPLES_PER_REASON - len(kept)])
        prompt = sum(report.get("tokens", {}).get("prompt", 0) for report in reports)
        completion = sum(report.get("tokens", {}).get("completion", 0) for report in reports)
        return {
            "requests": sum(report.get("requests", 0) for report in reports),
            "retries": sum(report.get("retries", 0) for report in reports),
            "tokens": {"prompt": prompt, "completion": completion, "total": prompt + completion},
            "failures": dict(sorted(failures.items())),
            "failure_samples": dict(sorted(samples.items())),
        }
