#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
fake_openai.py - a fake OpenAI embeddings server for ragd's tests and benchmarks (stdlib only).

    python3 tests/fake_openai.py --host 127.0.0.1 --port 0 [--latency-ms MS] [--api-key KEY]

Prints exactly one line `READY <port>` on stdout once listening, then serves (threaded):

  POST /v1/embeddings  the real protocol: `model`, `input` (string or array of strings),
                       optional `dimensions` (text-embedding-3 models only) and
                       `encoding_format` ("float" or "base64"); validated like the real API
                       (2048 inputs, 300,000 tokens per request, 8191 per input, no empty input);
                       answers `data` (deterministic bag-of-words vectors, L2-normalised, so
                       similar texts are similar), `model` and `usage`; errors in OpenAI's shape
                       {"error": {"message", "type", "param", "code"}}. Any non-empty bearer key
                       is accepted unless --api-key (or /_config) names the one to require.
  GET  /_stats         {"connections", "requests", "inputs", "tokens", "answered", "failures", "hanging",
                        "max_inputs", "max_tokens", "in_flight", "in_flight_max", "sizes",
                        "last_headers"}: connections counts TCP connections accepted; requests
                        counts every POST to /v1/embeddings; inputs and tokens count the ones
                        answered with embeddings.
  POST /_reset         zeroes the counters, drops the script, releases hanging requests.
  POST /_script        {"replies": [...]} queues scripted replies, one per coming request, in
                       order: {"status": 429, "code": "rate_limit_exceeded", "retry_after_ms":
                       "20", "retry_after": "1", "message": "..."} sends that error;
                       {"kind": "truncated"} cuts a 200 reply short; {"kind": "bad_json"} sends
                       a 200 that is not JSON; {"kind": "slow", "ms": N} delays a good reply;
                       {"kind": "hang"} never answers (until /_reset); {"kind": "ok"} answers.
  POST /_config        {"latency_ms": N, "api_key": "..." or null}.

Token counts are words and punctuation marks (at most what OpenAI's tokenizers count), so a
client that estimates conservatively never trips the limits here when it would not upstream.
"""
import argparse
import base64
import hashlib
import json
import math
import struct
import sys
import time

from fake_common import WORD, JsonHandler, ScriptedState, count_tokens, error_body, serve

MAX_INPUTS = 2048
MAX_REQUEST_TOKENS = 300000
MAX_INPUT_TOKENS = 8191
NATIVE_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072,
               "text-embedding-ada-002": 1536}


def embed(text, dims):
    v = [0.0] * dims
    for w in WORD.findall(text.lower()):
        if not w[0].isalnum():
            continue
        h = hashlib.blake2b(w.encode(), digest_size=8).digest()
        n = int.from_bytes(h, "little")
        v[n % dims] += 1.0 if (n >> 40) & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in v))
    if norm == 0:
        v[0] = 1.0
        norm = 1.0
    return [x / norm for x in v]


class State(ScriptedState):
    def __init__(self, latency_ms, api_key):
        self.latency_ms = latency_ms
        super().__init__(api_key)

    def clear(self):
        self.stats = {"connections": 0, "requests": 0, "inputs": 0, "tokens": 0, "answered": 0,
                      "failures": 0, "hanging": 0, "max_inputs": 0, "max_tokens": 0,
                      "in_flight": 0, "in_flight_max": 0, "sizes": [],
                      "last_headers": {}}


STATE = None


class Handler(JsonHandler):
    server_version = "fake-openai/1"

    def setup(self):
        super().setup()
        with STATE.lock:
            STATE.stats["connections"] += 1

    def do_GET(self):
        if self.path == "/_stats":
            with STATE.lock:
                snap = json.loads(json.dumps(STATE.stats))
            return self.reply(200, snap)
        return self.reply(404, error_body("Unknown request URL: GET %s" % self.path))

    def do_POST(self):
        raw = self.body()
        if self.path == "/_reset":
            STATE.reset()
            return self.reply(200, {"ok": True})
        if self.path == "/_script":
            with STATE.lock:
                STATE.script.extend(json.loads(raw or b"{}").get("replies", []))
            return self.reply(200, {"ok": True})
        if self.path == "/_config":
            cfg = json.loads(raw or b"{}")
            with STATE.lock:
                if "latency_ms" in cfg:
                    STATE.latency_ms = float(cfg["latency_ms"])
                if "api_key" in cfg:
                    STATE.api_key = cfg["api_key"]
            return self.reply(200, {"ok": True})
        if self.path.rstrip("/") != "/v1/embeddings":
            return self.reply(404, error_body("Unknown request URL: POST %s" % self.path))
        with STATE.lock:
            st = STATE.stats
            st["requests"] += 1
            st["in_flight"] += 1
            st["in_flight_max"] = max(st["in_flight_max"], st["in_flight"])
            st["last_headers"] = {k: v for k, v in self.headers.items()
                                  if k.lower() not in ("authorization", "content-length")}
            scripted = STATE.script.pop(0) if STATE.script else None
            latency = STATE.latency_ms
            release = STATE.release
        try:
            self.embeddings(raw, scripted, latency, release)
        finally:
            with STATE.lock:
                STATE.stats["in_flight"] -= 1

    def fail(self, status, obj, headers=None):
        with STATE.lock:
            STATE.stats["failures"] += 1
        self.reply(status, obj, headers)

    def embeddings(self, raw, scripted, latency, release):
        if latency > 0:
            time.sleep(latency / 1000.0)
        kind = (scripted or {}).get("kind")
        if scripted and "status" in scripted:
            status = int(scripted["status"])
            code = scripted.get("code")
            etype = {401: "invalid_request_error", 429: code or "requests",
                     400: "invalid_request_error"}.get(status, "server_error")
            if code == "insufficient_quota":
                etype = "insufficient_quota"
            msg = scripted.get("message") or "scripted failure %d" % status
            headers = {}
            if "retry_after_ms" in scripted:
                headers["retry-after-ms"] = str(scripted["retry_after_ms"])
            if "retry_after" in scripted:
                headers["Retry-After"] = str(scripted["retry_after"])
            return self.fail(status, error_body(msg, etype, code), headers)
        if kind == "hang":
            with STATE.lock:
                STATE.stats["hanging"] += 1
            release.wait()
            self.close_connection = True
            return
        if kind == "slow":
            time.sleep(float(scripted.get("ms", 1000)) / 1000.0)

        auth = self.headers.get("Authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else ""
        with STATE.lock:
            want = STATE.api_key
        if not key:
            return self.fail(401, error_body(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."))
        if want is not None and key != want:
            shown = key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else "****"
            return self.fail(401, error_body("Incorrect API key provided: %s. You can find your "
                                             "API key at https://platform.openai.com/account/"
                                             "api-keys." % shown, code="invalid_api_key"))
        try:
            req = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return self.fail(400, error_body("We could not parse the JSON body of your request."))
        if not isinstance(req, dict):
            return self.fail(400, error_body("The request body must be a JSON object."))
        model = req.get("model")
        if not isinstance(model, str) or not model:
            return self.fail(400, error_body("you must provide a model parameter", param="model"))
        inputs = req.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or \
                not all(isinstance(s, str) for s in inputs):
            return self.fail(400, error_body("'$.input' is invalid. Please check the API "
                                             "reference.", param="input"))
        if len(inputs) > MAX_INPUTS:
            return self.fail(400, error_body("'$.input' is invalid: at most %d inputs"
                                             % MAX_INPUTS, param="input"))
        tokens = [count_tokens(s) for s in inputs]
        for i, (s, t) in enumerate(zip(inputs, tokens)):
            if s == "":
                return self.fail(400, error_body("'$.input[%d]' must not be empty" % i,
                                                 param="input"))
            if t > MAX_INPUT_TOKENS:
                return self.fail(400, error_body(
                    "This model's maximum context length is %d tokens, however you requested "
                    "%d tokens in input %d." % (MAX_INPUT_TOKENS, t, i), param="input"))
        if sum(tokens) > MAX_REQUEST_TOKENS:
            return self.fail(400, error_body("Requested %d tokens, max %d tokens per request"
                                             % (sum(tokens), MAX_REQUEST_TOKENS), param="input"))
        dims = NATIVE_DIMS.get(model, 1536)
        if "dimensions" in req:
            d = req["dimensions"]
            if not model.startswith("text-embedding-3"):
                return self.fail(400, error_body("This model does not support specifying "
                                                 "dimensions.", param="dimensions"))
            if not isinstance(d, int) or isinstance(d, bool) or d < 1 or d > dims:
                return self.fail(400, error_body("Invalid value for 'dimensions'",
                                                 param="dimensions"))
            dims = d
        fmt = req.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            return self.fail(400, error_body("Invalid value for 'encoding_format'",
                                             param="encoding_format"))
        data = []
        for i, s in enumerate(inputs):
            v = embed(s, dims)
            if fmt == "base64":
                v = base64.b64encode(struct.pack("<%df" % dims, *v)).decode()
            data.append({"object": "embedding", "index": i, "embedding": v})
        total = sum(tokens)
        body = {"object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": total, "total_tokens": total}}
        if kind == "truncated":
            payload = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[:len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            with STATE.lock:
                STATE.stats["failures"] += 1
            return
        if kind == "bad_json":
            with STATE.lock:
                STATE.stats["failures"] += 1
            data = b'{"object": "list", "data": [{"object": "embedding", "ind'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        with STATE.lock:
            st = STATE.stats
            st["answered"] += 1
            st["inputs"] += len(inputs)
            st["tokens"] += total
            st["max_inputs"] = max(st["max_inputs"], len(inputs))
            st["max_tokens"] = max(st["max_tokens"], total)
            st["sizes"].append(len(inputs))
        self.reply(200, body)


def main():
    ap = argparse.ArgumentParser(description="fake OpenAI embeddings server")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--api-key", default=None, help="require exactly this key")
    args = ap.parse_args()
    global STATE
    STATE = State(args.latency_ms, args.api_key)
    return serve(args.host, args.port, Handler, STATE)

if __name__ == "__main__":
    sys.exit(main())
