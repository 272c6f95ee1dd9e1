"""The OpenAI-compatible chat client against a real local HTTP server (tests/fakes/fake_openai.py): retries with
back-off on 429/5xx honouring Retry-After, connection resets, 401, unreachable and garbage answers, logprobs, and
the concurrency bound as the server measures it."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
from fakes.fake_openai import DROP, Answer, FakeOpenAI

from mistudio.autointerp.client import ChatClient, Endpoint, approx_tokens
from mistudio.errors import (
    EndpointAuthError,
    EndpointResponseError,
    EndpointUnreachableError,
    InvalidInputError,
)

MESSAGES = [{"role": "user", "content": "what does feature 3 do?"}]


class Script:
    """A responder answering from a list, then `default` (thread-safe)."""

    def __init__(self, replies: list[Any], default: Any = "fine") -> None:
        self.replies = list(replies)
        self.default = default
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Any:
        with self.lock:
            return self.replies.pop(0) if self.replies else self.default


def _client(fake: FakeOpenAI, sleeps: list[float] | None = None, concurrency: int = 4,
            **endpoint: Any) -> ChatClient:
    record = sleeps if sleeps is not None else []
    return ChatClient(Endpoint(fake.url, "fake-model", **endpoint), concurrency=concurrency, sleep=record.append)


def test_answer_usage_and_request_body():
    with FakeOpenAI(lambda body: "the main thing this neuron does is find cats") as fake, _client(fake) as client:
        answer = client.complete(MESSAGES, max_tokens=50, temperature=0.5)
    assert answer.text == "the main thing this neuron does is find cats"
    assert answer.completion_tokens == 9 and answer.prompt_tokens == 5 and not answer.usage_estimated
    assert fake.requests == [{"model": "fake-model", "messages": MESSAGES, "max_tokens": 50, "temperature": 0.5}]
    assert client.usage().requests == 1 and client.usage().completion_tokens == 9


def test_429_then_503_retried_honouring_retry_after():
    script = Script([(429, {"error": {"message": "rate limited"}}, {"Retry-After": "0.25"}),
                     (503, "upstream overloaded", {"Retry-After": "1"})], default="ok")
    sleeps: list[float] = []
    with FakeOpenAI(script) as fake, _client(fake, sleeps) as client:
        assert client.complete(MESSAGES, max_tokens=5).text == "ok"
    assert sleeps == [0.25, 1.0] and fake.n_requests == 3
    assert client.usage().retries == 2


def test_exponential_backoff_without_retry_after_then_gives_up():
    sleeps: list[float] = []
    with FakeOpenAI(lambda body: (503, {"error": {"message": "no capacity"}})) as fake, \
            _client(fake, sleeps, max_retries=4, backoff_s=0.5) as client, \
            pytest.raises(EndpointUnreachableError) as err:
        client.complete(MESSAGES, max_tokens=5)
    assert fake.n_requests == 5 and len(sleeps) == 4
    for attempt, slept in enumerate(sleeps):  # backoff · 2^attempt, jittered down by at most a quarter
        assert 0.75 * 0.5 * 2 ** attempt <= slept <= 0.5 * 2 ** attempt
    assert fake.url in err.value.message and "HTTP 503: no capacity" in err.value.message
    assert "vllm serve" in err.value.message


def test_real_sleep_is_measured_between_retries():
    script = Script([(429, {"error": "slow down"}, {"Retry-After": "0.2"})], default="ok")
    with FakeOpenAI(script) as fake:
        client = ChatClient(Endpoint(fake.url, "m"), concurrency=1)
        start = time.monotonic()
        assert client.complete(MESSAGES, max_tokens=5).text == "ok"
        assert time.monotonic() - start >= 0.2
        client.close()


def test_connection_reset_is_retried():
    sleeps: list[float] = []
    with FakeOpenAI(Script([DROP, DROP], default="after resets")) as fake, _client(fake, sleeps) as client:
        assert client.complete(MESSAGES, max_tokens=5).text == "after resets"
    assert len(sleeps) == 2


def test_401_is_an_auth_error_not_retried():
    with FakeOpenAI(api_key="sk-right") as fake:
        with _client(fake, api_key="sk-wrong") as client, pytest.raises(EndpointAuthError) as err:
            client.complete(MESSAGES, max_tokens=5)
        assert fake.n_requests == 0  # refused before the responder
        assert fake.url in err.value.message and "--api-key" in err.value.message
        assert err.value.http_status == 401
        with _client(fake, api_key="sk-right") as client:
            assert client.complete(MESSAGES, max_tokens=5).text
            client.check()
        assert fake.headers[-1]["Authorization"] == "Bearer sk-right"
        with _client(fake) as client, pytest.raises(EndpointAuthError):
            client.check()


def test_unreachable_endpoint():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps: list[float] = []
    url = f"http://127.0.0.1:{port}/v1"
    client = ChatClient(Endpoint(url, "m", max_retries=2), sleep=sleeps.append)
    with pytest.raises(EndpointUnreachableError) as err:
        client.complete(MESSAGES, max_tokens=5)
    assert url in err.value.message and "failed 3 time(s)" in err.value.message and len(sleeps) == 2
    with pytest.raises(EndpointUnreachableError):
        client.check()


@pytest.mark.parametrize("reply", [(200, "<html>not json</html>"), {"id": "x", "object": "chat.completion"},
                                   {"choices": [{"message": {"content": 7}}]}])
def test_garbage_answers_are_response_errors(reply):
    with FakeOpenAI(lambda body: reply) as fake, _client(fake) as client, \
            pytest.raises(EndpointResponseError) as err:
        client.complete(MESSAGES, max_tokens=5)
    assert fake.n_requests == 1 and fake.url in err.value.message


def test_other_4xx_quotes_the_server():
    too_long = (400, {"error": {"message": "maximum context length is 4096 tokens"}})
    with FakeOpenAI(lambda body: too_long) as fake, _client(fake) as client, \
            pytest.raises(EndpointResponseError) as err:
        client.complete(MESSAGES, max_tokens=5)
    assert "maximum context length" in err.value.message and fake.n_requests == 1


def test_logprobs_parsed():
    chosen = [{"token": " yes", "logprob": -0.1, "top_logprobs": [{"token": " yes", "logprob": -0.1},
                                                                    {"token": " no", "logprob": -2.4}]}]
    with FakeOpenAI(Script([Answer(" yes", logprobs=chosen)], default="a b c")) as fake, _client(fake) as client:
        first = client.complete(MESSAGES, max_tokens=1, logprobs=True, top_logprobs=2)
        auto = client.complete(MESSAGES, max_tokens=3, logprobs=True, top_logprobs=3)
        plain = client.complete(MESSAGES, max_tokens=3)
    assert first.logprobs is not None and first.logprobs[0].top == [(" yes", -0.1), (" no", -2.4)]
    assert fake.requests[0]["logprobs"] is True and fake.requests[0]["top_logprobs"] == 2
    assert auto.logprobs is not None and [t.token for t in auto.logprobs] == ["a", " b", " c"]
    assert all(len(t.top) == 3 for t in auto.logprobs)
    assert plain.logprobs is None and "logprobs" not in fake.requests[2]


def test_missing_usage_is_estimated():
    body = {"choices": [{"message": {"role": "assistant", "content": "x" * 40}, "finish_reason": "stop"}]}
    with FakeOpenAI(lambda b: body) as fake, _client(fake) as client:
        answer = client.complete(MESSAGES, max_tokens=5)
    assert answer.usage_estimated and answer.completion_tokens == approx_tokens("x" * 40) == 10


@pytest.mark.parametrize("concurrency", [1, 4, 16])
def test_concurrency_bound_measured_on_the_server(concurrency):
    with FakeOpenAI(lambda body: "ok", delay_s=0.03) as fake, \
            ChatClient(Endpoint(fake.url, "m"), concurrency=concurrency) as client:
        results = list(client.map_concurrent(lambda i: client.complete(MESSAGES, max_tokens=1).text,
                                             range(3 * concurrency)))
    assert sorted(i for i, _ in results) == list(range(3 * concurrency))
    assert all(r == "ok" for _, r in results)
    assert fake.max_in_flight == concurrency


def test_map_concurrent_reports_failures_and_finishes_the_rest():
    def responder(body: dict[str, Any]) -> Any:
        return (400, {"error": "bad feature"}) if "feature 3" in body["messages"][0]["content"] else "ok"

    with FakeOpenAI(responder) as fake, ChatClient(Endpoint(fake.url, "m"), concurrency=3) as client:
        out = dict(client.map_concurrent(
            lambda i: client.complete([{"role": "user", "content": f"feature {i}"}], max_tokens=1).text, range(8)))
    assert isinstance(out.pop(3), EndpointResponseError)
    assert out == {i: "ok" for i in range(8) if i != 3}


def test_endpoint_validation():
    assert Endpoint("http://h:8000/v1/chat/completions", "m").url == "http://h:8000/v1"
    assert "api_key" not in repr(Endpoint("http://h/v1", "m", api_key="sk-secret"))
    assert "sk-secret" not in repr(Endpoint("http://h/v1", "m", api_key="sk-secret"))
    with pytest.raises(InvalidInputError, match="http://"):
        Endpoint("localhost:8000/v1", "m")
    with pytest.raises(InvalidInputError, match="model"):
        Endpoint("http://h/v1", " ")
    with pytest.raises(InvalidInputError, match="concurrency"):
        ChatClient(Endpoint("http://h/v1", "m"), concurrency=0)
