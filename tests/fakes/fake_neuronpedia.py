"""A small local Neuronpedia API for tests: `POST /api/model/new`, `/api/source-set/new` and
`/api/feature/upload-batch` with the real validation rules (ids, ≤128 features, ≤1024 tokens, ≤20 logits,
explanations ≤512 characters, equal tokens/values lengths), an API key, and a switch to fail on purpose.

Like the real route (`apps/webapp/app/api/feature/upload-batch/route.tsx`), upload-batch stores what it takes as
database rows (`neurons`: `frac_nonzero`, `pos_*`, `neg_*`, `maxActApprox`; `activations`: values, `maxValue`,
`binMin/binMax/binContains`; explanations) and drops every other key; the dropped keys are recorded in `ignored`."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL_RE = re.compile(r"^[a-z][a-z0-9.-]*[a-z0-9]$")
SET_RE = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")


class FakeNeuronpedia:
    """Run with `with FakeNeuronpedia() as np: np.url ...`; uploaded features are in `np.features`."""

    def __init__(self, api_key: str = "test-key") -> None:
        self.api_key = api_key
        self.models: dict[str, dict[str, Any]] = {}
        self.source_sets: dict[tuple[str, str], dict[str, Any]] = {}
        self.features: dict[tuple[str, str, int], dict[str, Any]] = {}
        self.neurons: dict[tuple[str, str, int], dict[str, Any]] = {}  # the rows the real route creates
        self.ignored: set[str] = set()  # keys sent that the real route has no field for
        self.calls: list[tuple[str, int]] = []
        self.fail_on_call: int | None = None  # the n-th upload-batch call (1-based) answers 500
        self._upload_calls = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeNeuronpedia:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ----- routes -----------------------------------------------------------------------------------------
    def model_new(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        mid, layers = body.get("id", ""), body.get("layers")
        if not (isinstance(mid, str) and MODEL_RE.match(mid) and 2 <= len(mid) <= 32):
            return 400, {"message": "invalid model id"}
        if not isinstance(layers, int) or not 1 <= layers <= 127:
            return 400, {"message": "layers must be 1..127"}
        if mid in self.models:
            return 409, {"message": "model already exists"}
        self.models[mid] = {"id": mid, "layers": layers}
        return 200, self.models[mid]

    def source_set_new(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name, mid = body.get("name", ""), body.get("modelId", "")
        if mid not in self.models:
            return 404, {"message": "model not found"}
        if not (isinstance(name, str) and SET_RE.match(name)) or "--" in name or name == "neurons":
            return 400, {"message": "invalid source set name"}
        if (mid, name) in self.source_sets:
            return 409, {"message": "source set already exists"}
        sources = [f"{i}-{name}" for i in range(self.models[mid]["layers"])]
        self.source_sets[(mid, name)] = {"name": name, "modelId": mid, "sources": sources, "visibility": "UNLISTED"}
        return 200, self.source_sets[(mid, name)]

    def upload_batch(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self._upload_calls += 1
        if self.fail_on_call == self._upload_calls:
            return 500, {"message": "internal error (forced by the test)"}
        mid, source = body.get("modelId"), body.get("source")
        known = {s for ss in self.source_sets.values() if ss["modelId"] == mid for s in ss["sources"]}
        if source not in known:
            return 404, {"message": f"source {source} not found"}
        feats = body.get("features")
        if not isinstance(feats, list) or not 1 <= len(feats) <= 128:
            return 400, {"message": "features must hold 1..128 items"}
        for f in feats:
            problem = _feature_problem(f)
            if problem:
                return 400, {"message": f"feature {f.get('index')}: {problem}"}
        for f in feats:
            self.features[(mid, source, f["index"])] = f
            self.neurons[(mid, source, f["index"])] = _neuron_row(f)
            self.ignored |= set(f) - FEATURE_FIELDS
            self.ignored |= {f"activations.{k}" for a in f["activations"] for k in set(a) - ACTIVATION_FIELDS}
        return 200, {"uploaded": len(feats)}


FEATURE_FIELDS = {"index", "density", "topLogits", "bottomLogits", "explanations", "activations"}
ACTIVATION_FIELDS = {"tokens", "values", "quantileMax", "quantileMin", "quantileFraction"}


def _neuron_row(f: dict[str, Any]) -> dict[str, Any]:
    """The Neuron row (with its activations and explanations) the real route writes for one uploaded feature."""
    acts = [{"tokens": a["tokens"], "values": a["values"], "maxValue": max(a["values"]),
             "maxValueTokenIndex": a["values"].index(max(a["values"])), "minValue": min(a["values"]),
             "binMin": a.get("quantileMin"), "binMax": a.get("quantileMax"), "binContains": a.get("quantileFraction")}
            for a in f["activations"]]
    return {"frac_nonzero": f.get("density", -1),
            "pos_str": [t["token"] for t in f.get("topLogits") or []],
            "pos_values": [t["value"] for t in f.get("topLogits") or []],
            "neg_str": [t["token"] for t in f.get("bottomLogits") or []],
            "neg_values": [t["value"] for t in f.get("bottomLogits") or []],
            "maxActApprox": max(a["maxValue"] for a in acts), "activations": acts,
            "explanations": [e["text"] for e in f.get("explanations") or []]}


def _feature_problem(f: dict[str, Any]) -> str | None:
    if not isinstance(f.get("index"), int) or not 0 <= f["index"] <= 10_000_000:
        return "index must be an integer in 0..10,000,000"
    if "density" in f and not 0 <= f["density"] <= 1:
        return "density must be in 0..1"
    for key in ("topLogits", "bottomLogits"):
        if len(f.get(key) or []) > 20:
            return f"{key} holds more than 20 items"
    for e in f.get("explanations") or []:
        if not 1 <= len(e.get("text") or "") <= 512:
            return "explanation text must be 1..512 characters"
    acts = f.get("activations") or []
    if not acts:
        return "at least one activation is required"
    for a in acts:
        tokens, values = a.get("tokens") or [], a.get("values") or []
        if not 1 <= len(tokens) <= 1024 or not 1 <= len(values) <= 1024:
            return "tokens and values must hold 1..1024 items"
        if len(tokens) != len(values):
            return "tokens and values must have the same length"
        if "quantileFraction" in a and not 0 <= a["quantileFraction"] <= 1:
            return "quantileFraction must be in 0..1"
    return None


def _make_handler(app: FakeNeuronpedia) -> type[BaseHTTPRequestHandler]:
    routes = {"/api/model/new": app.model_new, "/api/source-set/new": app.source_set_new,
              "/api/feature/upload-batch": app.upload_batch}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            route = routes.get(self.path)
            if route is None:
                return self._send(404, {"message": "not found"})
            if self.headers.get("x-api-key") != app.api_key:
                return self._send(401, {"message": "invalid API key"})
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
            except json.JSONDecodeError:
                return self._send(400, {"message": "invalid JSON"})
            status, payload = route(body)
            app.calls.append((self.path, status))
            self._send(status, payload)

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler

