"""A thread-safe client of the OpenAI chat completions API, as OpenAI, vLLM, llama.cpp and Ollama serve it.

`Endpoint` names the server (`url` is the base URL, e.g. `http://localhost:8000/v1`; requests go to
`{url}/chat/completions`), `ChatClient.complete` sends one chat request and `ChatClient.map_concurrent` runs a
function over many items with at most `concurrency` requests in flight. 429, 5xx and connection failures are retried
with exponential back-off (`backoff_s · 2^attempt`, capped at `max_backoff_s`, a `Retry-After` header honoured);
401/403 and other 4xx are not retried.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx

from mistudio.errors import (
    EndpointAuthError,
    EndpointResponseError,
    EndpointUnreachableError,
    InvalidInputError,
    MiStudioError,
)

T = TypeVar("T")
R = TypeVar("R")

RETRY_STATUSES = frozenset({408, 429})
"""Retried besides every 5xx."""
MAX_RETRY_AFTER_S = 120.0
CHARS_PER_TOKEN = 4.0
"""The token approximation used when an endpoint reports no `usage` (and by `autointerp.estimate`)."""


def approx_tokens(text: str) -> int:
    """Tokens in `text` by the characters / 4 rule (English prose with GPT-style BPE vocabularies)."""
    return max(1, round(len(text) / CHARS_PER_TOKEN)) if text else 0


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible server and the model to ask.

    `url` is the API base (`https://api.openai.com/v1`, `http://localhost:8000/v1` for vLLM, `http://localhost:11434/v1`
    for Ollama); a URL given with `/chat/completions` at its end is accepted. The API key never appears in `repr`.
    """

    url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 60.0
    max_retries: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def __post_init__(self) -> None:
        url = self.url.strip().rstrip("/")
        if url.endswith("/chat/completions"):
            url = url[: -len("/chat/completions")]
        if not url.startswith(("http://", "https://")):
            raise InvalidInputError(
                f"endpoint URL {self.url!r} must start with http:// or https:// "
                "(e.g. http://localhost:8000/v1 for vLLM, http://localhost:11434/v1 for Ollama)"
            )
        if not self.model.strip():
            raise InvalidInputError("the endpoint needs a model name (--model), e.g. the name `vllm serve` was given")
        if self.max_retries < 0 or self.timeout_s <= 0:
            raise InvalidInputError("max_retries must be >= 0 and timeout_s > 0")
        object.__setattr__(self, "url", url)

    @property
    def chat_url(self) -> str:
        return f"{self.url}/chat/completions"


@dataclass(frozen=True)
class TokenLogprobs:
    """One generated token, its log-probability and the most likely alternatives (`top`: (token, logprob))."""

    token: str
    logprob: float
    top: list[tuple[str, float]]


@dataclass(frozen=True)
class ChatResponse:
    """One answer. Token counts come from the endpoint's `usage` (`usage_estimated` when it gave none)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    logprobs: list[TokenLogprobs] | None = None
    finish_reason: str | None = None
    usage_estimated: bool = False


@dataclass
class Usage:
    """Running totals of a client (read `snapshot()` from any thread)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    failures: int = 0


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After") or response.headers.get("retry-after-ms")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
        if "retry-after-ms" in response.headers and "Retry-After" not in response.headers:
            seconds /= 1000.0
        return max(0.0, min(seconds, MAX_RETRY_AFTER_S))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(when.timestamp() - time.time(), MAX_RETRY_AFTER_S))


def _error_message(response: httpx.Response) -> str:
    """The server's own error text (OpenAI `{"error": {"message"}}`, vLLM/llama.cpp variants), shortened."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300].strip() or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error", body.get("detail", body.get("message")))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error is not None:
            return str(error)[:300]
    return str(body)[:300]


def parse_chat_response(url: str, body: Any, messages: list[dict[str, Any]]) -> ChatResponse:
    """A `chat.completion` JSON body as a `ChatResponse`.

    Raises:
        EndpointResponseError: the body has no `choices[0].message.content` string.
    """
    try:
        choice = body["choices"][0]
        text = choice["message"]["content"]
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise TypeError("content is not a string")
    except (KeyError, IndexError, TypeError) as err:
        raise EndpointResponseError(
            f"{url} answered something that is not an OpenAI chat completion ({err!r}; body starts "
            f"{str(body)[:200]!r}); check that the URL is an OpenAI-compatible API base ending in /v1",
            details={"url": url},
        ) from err
    usage = body.get("usage") if isinstance(body, dict) else None
    estimated = not (isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int))
    if estimated:
        prompt_tokens = sum(approx_tokens(str(m.get("content", ""))) for m in messages)
        completion_tokens = approx_tokens(text)
    else:
        assert isinstance(usage, dict)
        prompt_tokens = int(usage["prompt_tokens"])
        completion_tokens = int(usage.get("completion_tokens") or 0)
    logprobs = None
    content = (choice.get("logprobs") or {}).get("content") if isinstance(choice.get("logprobs"), dict) else None
    if isinstance(content, list):
        logprobs = [
            TokenLogprobs(
                token=str(entry.get("token", "")),
                logprob=float(entry.get("logprob", 0.0)),
                top=[(str(t.get("token", "")), float(t.get("logprob", 0.0))) for t in entry.get("top_logprobs") or []],
            )
            for entry in content
            if isinstance(entry, dict)
        ]
    return ChatResponse(
        text=text,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        logprobs=logprobs,
        finish_reason=choice.get("finish_reason"),
        usage_estimated=estimated,
    )


class ChatClient:
    """Chat completions against one `Endpoint`, at most `concurrency` requests in flight (thread-safe)."""

    def __init__(self, endpoint: Endpoint, concurrency: int = 8, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if concurrency < 1:
            raise InvalidInputError(f"concurrency must be at least 1, got {concurrency}")
        self.endpoint = endpoint
        self.concurrency = concurrency
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._usage = Usage()
        headers = {"Content-Type": "application/json"}
        if endpoint.api_key:
            headers["Authorization"] = f"Bearer {endpoint.api_key}"
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(endpoint.timeout_s, connect=min(endpoint.timeout_s, 10.0)),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def usage(self) -> Usage:
        """A copy of the running totals."""
        with self._lock:
            return Usage(**vars(self._usage))

    def _count(self, **delta: int) -> None:
        with self._lock:
            for name, value in delta.items():
                setattr(self._usage, name, getattr(self._usage, name) + value)

    def _backoff(self, attempt: int) -> float:
        delay = self.endpoint.backoff_s * (2 ** attempt)
        return float(min(delay, self.endpoint.max_backoff_s) * (0.75 + 0.25 * random.random()))

    def check(self) -> None:
        """One `GET {url}/models` (no retries): fail early when the server is down or refuses the key.

        A server without that route (404) passes.

        Raises:
            EndpointUnreachableError: the server did not answer.
            EndpointAuthError: it refused the API key.
        """
        url = f"{self.endpoint.url}/models"
        try:
            response = self._http.get(url)
        except httpx.HTTPError as err:
            raise self._unreachable(f"did not answer ({type(err).__name__}: {err})") from err
        if response.status_code in (401, 403):
            raise self._auth_error(response)

    def _unreachable(self, what: str) -> EndpointUnreachableError:
        return EndpointUnreachableError(
            f"{self.endpoint.chat_url} {what}; check that the server is running and the URL is its OpenAI API base "
            "(e.g. `vllm serve MODEL --port 8000` → http://localhost:8000/v1, Ollama → http://localhost:11434/v1)",
            details={"url": self.endpoint.url},
        )

    def _auth_error(self, response: httpx.Response) -> EndpointAuthError:
        return EndpointAuthError(
            f"{self.endpoint.url} refused the API key (HTTP {response.status_code}: {_error_message(response)}); "
            "pass the key it expects with --api-key (a local vLLM/llama.cpp/Ollama server usually needs none, "
            "unless started with --api-key)",
            details={"url": self.endpoint.url, "status": response.status_code},
        )

    def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        logprobs: bool = False,
        top_logprobs: int | None = None,
    ) -> ChatResponse:
        """Send one chat request and return the first choice.

        Raises:
            EndpointUnreachableError: no answer (connection refused/reset, timeout) or 429/5xx after every retry.
            EndpointAuthError: 401/403.
            EndpointResponseError: another 4xx (the server's message is quoted), or an answer that is not a chat
                completion.
        """
        payload: dict[str, Any] = {
            "model": self.endpoint.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if logprobs:
            payload["logprobs"] = True
            if top_logprobs is not None:
                payload["top_logprobs"] = top_logprobs
        url = self.endpoint.chat_url
        attempts = self.endpoint.max_retries + 1
        last = ""
        with self._slots:
            for attempt in range(attempts):
                retry_after: float | None = None
                try:
                    response = self._http.post(url, json=payload)
                except httpx.HTTPError as err:
                    last = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
                else:
                    status = response.status_code
                    if status == 200:
                        try:
                            body = response.json()
                        except ValueError as err:
                            self._count(failures=1)
                            raise EndpointResponseError(
                                f"{url} answered HTTP 200 with a body that is not JSON (starts "
                                f"{response.text[:200]!r}); check that the URL is an OpenAI-compatible API base",
                                details={"url": self.endpoint.url},
                            ) from err
                        try:
                            result = parse_chat_response(url, body, messages)
                        except EndpointResponseError:
                            self._count(failures=1)
                            raise
                        self._count(requests=1, prompt_tokens=result.prompt_tokens,
                                    completion_tokens=result.completion_tokens)
                        return result
                    if status in (401, 403):
                        self._count(failures=1)
                        raise self._auth_error(response)
                    if status not in RETRY_STATUSES and status < 500:
                        self._count(failures=1)
                        hint = ("; check the model name (GET /models lists the server's models) and that the URL "
                                "ends in /v1") if status == 404 else ""
                        raise EndpointResponseError(
                            f"{url} refused the request (HTTP {status}: {_error_message(response)}){hint}",
                            details={"url": self.endpoint.url, "status": status},
                        )
                    last = f"HTTP {status}: {_error_message(response)}"
                    retry_after = _retry_after_s(response)
                if attempt + 1 < attempts:
                    self._count(retries=1)
                    self._sleep(retry_after if retry_after is not None else self._backoff(attempt))
        self._count(failures=1)
        raise self._unreachable(f"failed {attempts} time(s), last: {last}")

    def map_concurrent(self, fn: Callable[[T], R],
                       items: Iterable[T]) -> Generator[tuple[T, R | MiStudioError], None, None]:
        """Run `fn(item)` on threads, at most `concurrency` at once, yielding `(item, result)` as each finishes.

        A `MiStudioError` raised by `fn` is yielded in place of its result; any other exception propagates. Items
        are read lazily. Leaving the loop early cancels the items not started yet (running ones finish).
        """
        iterator = iter(items)
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="autointerp")
        pending: dict[Future[R], T] = {}
        exhausted = False

        def top_up() -> None:
            nonlocal exhausted
            while not exhausted and len(pending) < self.concurrency:
                try:
                    item = next(iterator)
                except StopIteration:
                    exhausted = True
                    return
                pending[pool.submit(fn, item)] = item

        try:
            top_up()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                finished = [(future, pending.pop(future)) for future in done]
                top_up()  # refill before the caller handles the results: the slots never wait on it
                for future, item in finished:
                    error = future.exception()
                    if error is None:
                        yield item, future.result()
                    elif isinstance(error, MiStudioError):
                        yield item, error
                    else:
                        raise error
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
