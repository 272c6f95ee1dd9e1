"""A local OpenAI-compatible chat server for tests and benchmarks (what vLLM, llama.cpp and Ollama serve).

`FakeOpenAI(responder)` serves, on a free port of 127.0.0.1:

- `POST /v1/chat/completions`: the request's JSON body goes to `responder(body)`, which returns
  - a `str`: the answer's content, wrapped in the OpenAI response format (`id`, `object: "chat.completion"`,
    `model`, `choices[0].message.content`, `finish_reason`, `usage` with prompt/completion token counts); when the
    request asks `logprobs: true` (with `top_logprobs: N`), `choices[0].logprobs.content[i]` holds one entry per
    answer token (`token`, `logprob`, `bytes`, `top_logprobs`: the token itself first, then N - 1 fillers);
  - an `Answer(content, logprobs=..., headers=..., delay_s=...)`: the same with chosen log-probabilities (each
    entry `{"token", "logprob", "top_logprobs": [{"token", "logprob"}]}`), extra headers or a delay;
  - a `dict`: sent as the whole JSON body (status 200);
  - a tuple `(status, body)` or `(status, body, headers)`: `body` a dict (JSON) or a str (sent raw, e.g. garbage),
    e.g. `(429, {"error": ...}, {"Retry-After": "0.1"})` or `(503, "upstream down")`;
  - `DROP`: the connection is closed without an answer (a connection reset for the client).
- `GET /v1/models`: `{"object": "list", "data": [{"id": model, "object": "model"}]}`.

With `api_key=...` every request without `Authorization: Bearer <api_key>` gets 401 (OpenAI's error body).
`fake.requests` records every chat request body in arrival order, `fake.headers` their headers;
`fake.max_in_flight` is the most chat requests answered at once (with `delay_s` > 0, a measure of the client's
concurrency). Keep-alive HTTP/1.1 and one thread per connection: thousands of requests per second, enough for the
concurrency-64 benchmark. `python -m fakes.fake_openai --port P --latency S` (from `tests/`) serves one fixed answer
in its own process.

    with FakeOpenAI(lambda body: "the main thing this neuron does is find cats") as fake:
        client = ChatClient(Endpoint(fake.url, "fake-model"))
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP = _Drop()
"""A responder's answer that closes the connection without a response."""


@dataclass
class Answer:
    """A chat answer with chosen log-probabilities, headers or delay."""

    content: str
    logprobs: list[dict[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    finish_reason: str = "stop"


Reply = str | dict[str, Any] | Answer | tuple[Any, ...] | _Drop
Responder = Callable[[dict[str, Any]], Reply]

_TOKEN_RE = re.compile(r"\s*\S+|\s+")


def rough_tokens(text: str) -> list[str]:
    """Split text into word pieces, the fake's stand-in for a tokenizer (each keeps its leading space)."""
    return _TOKEN_RE.findall(text)


def prompt_text(body: dict[str, Any]) -> str:
    """All message contents of a chat request, joined by newlines."""
    parts = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):  # the content-parts form
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "\n".join(parts)


def auto_logprobs(content: str, top_n: int) -> list[dict[str, Any]]:
    """Log-probabilities for an answer: each token sure (logprob ~0), N - 1 unlikely fillers after it."""
    entries = []
    for token in rough_tokens(content):
        top = [{"token": token, "logprob": -0.001, "bytes": list(token.encode())}]
        top += [{"token": f"<alt{i}>", "logprob": -10.0 - i, "bytes": None} for i in range(max(top_n - 1, 0))]
        entries.append({"token": token, "logprob": -0.001, "bytes": list(token.encode()), "top_logprobs": top})
    return entries


def chat_body(request: dict[str, Any], content: str, *, logprobs: list[dict[str, Any]] | None = None,
              finish_reason: str = "stop") -> dict[str, Any]:
    """The OpenAI `chat.completion` response body for `content` (usage counted with `rough_tokens`)."""
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": content},
        "finish_reason": finish_reason,
        "logprobs": None,
    }
    if request.get("logprobs"):
        entries = logprobs if logprobs is not None else auto_logprobs(content, int(request.get("top_logprobs") or 1))
        choice["logprobs"] = {"content": entries}
    prompt_tokens = len(rough_tokens(prompt_text(request)))
    completion_tokens = len(rough_tokens(content))
    return {
        "id": f"chatcmpl-fake-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "fake-model"),
        "choices": [choice],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def default_responder(body: dict[str, Any]) -> Reply:
    return "the main thing this neuron does is find a fake concept"


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # a burst of 64+ new connections must not overflow the listen backlog


class FakeOpenAI:
    """The server; use as a context manager (`with FakeOpenAI(fn) as fake: fake.url`)."""

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        api_key: str | None = None,
        model: str = "fake-model",
        delay_s: float = 0.0,
        port: int = 0,
    ) -> None:
        self.responder: Responder = responder or default_responder
        self.api_key = api_key
        self.model = model
        self.delay_s = delay_s
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL clients are given (ends in `/v1`)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def n_requests(self) -> int:
        with self._lock:
            return len(self.requests)

    def start(self) -> FakeOpenAI:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if not isinstance(body, str) else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                if fake.api_key is None:
                    return True
                if self.headers.get("Authorization") == f"Bearer {fake.api_key}":
                    return True
                self._send(401, {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                                           "code": "invalid_api_key"}})
                return False

            def do_GET(self) -> None:
                if not self._authorised():
                    return
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": fake.model, "object": "model",
                                                                 "owned_by": "fake"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if not self._authorised():
                    return
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._send(400, {"error": {"message": "body is not JSON"}})
                    return
                with fake._lock:
                    fake.requests.append(body)
                    fake.headers.append(dict(self.headers.items()))
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    if fake.delay_s:
                        time.sleep(fake.delay_s)
                    self._answer(body)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def _answer(self, body: dict[str, Any]) -> None:
                try:
                    reply = fake.responder(body)
                except Exception as err:  # a responder bug shows up as a 500 naming it
                    self._send(500, {"error": {"message": f"responder raised {err!r}"}})
                    return
                if isinstance(reply, _Drop):
                    self.close_connection = True
                    self.connection.close()
                    return
                if isinstance(reply, str):
                    self._send(200, chat_body(body, reply))
                elif isinstance(reply, Answer):
                    if reply.delay_s:
                        time.sleep(reply.delay_s)
                    self._send(200, chat_body(body, reply.content, logprobs=reply.logprobs,
                                              finish_reason=reply.finish_reason), reply.headers)
                elif isinstance(reply, dict):
                    self._send(200, reply)
                elif isinstance(reply, tuple):
                    status, payload, *rest = reply
                    self._send(int(status), payload, rest[0] if rest else None)
                else:
                    self._send(500, {"error": {"message": f"responder returned {type(reply).__name__}"}})

        return Handler


def main() -> None:
    """`python -m fakes.fake_openai --port P [--latency S] [--answer TEXT] [--api-key K]`: serve until killed."""
    import argparse

    parser = argparse.ArgumentParser(description="A local OpenAI-compatible chat server answering one text.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--answer", default="the main thing this neuron does is find a fake concept")
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args()
    answer = args.answer
    server = FakeOpenAI(lambda body: answer, api_key=args.api_key, delay_s=args.latency, port=args.port)
    print(server.url, flush=True)
    server._server.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main()
