"""A local Neuronpedia steering API for tests: `POST /api/steer` (completion) and `POST /api/steer-chat` with
the web API's validation rules (required fields, temperature 0..2, n_tokens 1..256, freq_penalty -2..2,
strength_multiplier 0..10, a known steer method), the `x-api-key` header, and answers in Neuronpedia's shape:
completion `{"STEERED": prompt + text, "DEFAULT": ..., "steeredLogProbs", "defaultLogProbs", "id", "shareUrl",
"limit"}`, chat `{"STEERED": {"raw", "chatTemplate": [...], "logprobs"}, "DEFAULT": {...}, ...}`.

What it completes is up to the test: `respond(payload) -> {"STEERED": text, "DEFAULT": text}` (the completion
only; the server echoes the prompt in front, as Neuronpedia does)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], dict[str, str]]
METHODS = ("SIMPLE_ADDITIVE", "ORTHOGONAL_DECOMP", "PROJECTION_CAP")


def _problems(body: dict[str, Any], chat: bool) -> list[str]:
    problems = []
    required = ["modelId", "features", "temperature", "n_tokens", "freq_penalty", "seed", "strength_multiplier"]
    required += ["defaultChatMessages", "steeredChatMessages"] if chat else ["prompt"]
    problems += [f"{key} is a required field" for key in required if key not in body]
    if problems:
        return problems
    if not 0 <= body["temperature"] <= 2:
        problems.append("temperature must be between 0 and 2")
    if not (isinstance(body["n_tokens"], int) and 1 <= body["n_tokens"] <= 256):
        problems.append("n_tokens must be an integer between 1 and 256")
    if not -2 <= body["freq_penalty"] <= 2:
        problems.append("freq_penalty must be between -2 and 2")
    if not 0 <= body["strength_multiplier"] <= 10:
        problems.append("strength_multiplier must be between 0 and 10")
    if body.get("steer_method", "SIMPLE_ADDITIVE") not in METHODS:
        problems.append("steer_method must be one of " + ", ".join(METHODS))
    for feature in body["features"]:
        if not {"modelId", "layer", "index", "strength"} <= set(feature):
            problems.append("each feature needs modelId, layer, index and strength")
    return problems


class FakeNeuronpediaSteer:
    """Run with `with FakeNeuronpediaSteer(respond) as np: np.url ...`; requests land in `np.requests`."""

    def __init__(self, respond: Responder, api_key: str = "steer-key") -> None:
        self.respond = respond
        self.api_key = api_key
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeNeuronpediaSteer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(status, JSON answer) for a request."""
        chat = path == "/api/steer-chat"
        problems = _problems(body, chat)
        if problems:
            return 400, {"message": "; ".join(problems)}
        self.requests.append((path, body))
        texts = self.respond(body)
        out: dict[str, Any] = {"id": "fake-steer-id", "shareUrl": None, "limit": None}
        if chat:
            messages = body["defaultChatMessages"]
            prompt = "".join(f"<start_of_turn>{m['role']}\n{m['content']}<end_of_turn>\n" for m in messages)
            for kind in ("STEERED", "DEFAULT"):
                text = texts[kind]
                out[kind] = {"raw": prompt + "<start_of_turn>model\n" + text,
                             "chatTemplate": [*messages, {"role": "model", "content": text.strip()}],
                             "logprobs": None}
            return 200, out
        out.update({"STEERED": body["prompt"] + texts["STEERED"], "DEFAULT": body["prompt"] + texts["DEFAULT"],
                    "steeredLogProbs": None, "defaultLogProbs": None})
        return 200, out


def _make_handler(fake: FakeNeuronpediaSteer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            if self.path not in ("/api/steer", "/api/steer-chat"):
                self._send(404, {"message": "Not found"})
                return
            if self.headers.get("x-api-key") != fake.api_key:
                self._send(401, {"message": "Invalid API key"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self._send(400, {"message": "invalid JSON"})
                return
            self._send(*fake.answer(self.path, body))

    return Handler
