#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
fake_rerank.py - a fake cross-encoder reranking server for ragd's tests (stdlib only), speaking
the two protocols ragd's [rerank] providers use.

    python3 tests/fake_rerank.py --host 127.0.0.1 --port 0 [--api-key KEY]

Prints exactly one line `READY <port>` on stdout once listening, then serves (threaded):

  POST /rerank      Hugging Face Text Embeddings Inference: {"query", "texts", "truncate",
                    "raw_scores", "return_text", "truncation_direction"}; answers a JSON array
                    [{"index", "score"(, "text")}] sorted best first. Errors as TEI sends them:
                    {"error": "...", "error_type": "Validation"} with 422 (empty texts, empty
                    query) or 413 (more than --max-batch texts, TEI's max_client_batch_size, 32).
  POST /v1/rerank   Cohere (Jina and Voyage are alike): {"model" (required), "query",
                    "documents" (strings or {"text": ...}), "top_n", "return_documents"};
                    answers {"id", "results": [{"index", "relevance_score"}] best first, top_n of
                    them, "meta": {"api_version": {"version": "1"}, "billed_units":
                    {"search_units": 1}}}; errors {"message": ...} with 400, or 401 for a wrong
                    bearer key.
  GET  /_stats      {"requests", "texts", "last_body", "last_headers"}.
  POST /_reset      zeroes the counters and drops the script and the scores.
  POST /_config     {"scores": {"substring": score, ...}}: a text containing a substring scores
                    that (the first listed match wins); other texts score the share of the query's
                    words they contain, times 0.5. {"api_key": "..."|null}.
  POST /_script     {"replies": [...]}, one per coming rerank request, in order: {"kind": "ok"},
                    {"kind": "slow", "ms": N} (a good reply after N ms), {"kind": "error",
                    "status": 500, "echo_auth": false} (true: the message quotes the
                    Authorization header, as some proxies do), {"kind": "bad_json"}, {"kind": "short"} (a reply with one
                    index missing).
"""
import argparse
import json
import re
import sys
import time
import uuid

from fake_common import JsonHandler, ScriptedState, serve

WORD = re.compile(r"\w+", re.UNICODE)


class State(ScriptedState):
    def __init__(self, api_key, max_batch):
        self.max_batch = max_batch
        super().__init__(api_key)

    def clear(self):
        self.requests = 0
        self.texts = 0
        self.last_body = None
        self.last_headers = {}
        self.scores = []


STATE = None


def score(query, text):
    with STATE.lock:
        table = list(STATE.scores)
    for sub, s in table:
        if sub in text:
            return float(s)
    q = set(w.lower() for w in WORD.findall(query))
    t = set(w.lower() for w in WORD.findall(text))
    return 0.5 * (len(q & t) / len(q)) if q else 0.0


class Handler(JsonHandler):
    def send_json(self, status, obj, raw=None):
        self.reply(status, obj, raw=raw)

    def json_body(self):
        try:
            return json.loads(self.body() or b"null")
        except ValueError:
            return None

    def do_GET(self):
        if self.path == "/_stats":
            with STATE.lock:
                self.send_json(200, {"requests": STATE.requests, "texts": STATE.texts,
                                     "last_body": STATE.last_body,
                                     "last_headers": STATE.last_headers})
            return
        self.send_json(404, {"error": "not found"})

    def do_POST(self):
        body = self.json_body()
        if self.path == "/_reset":
            STATE.reset()
            return self.send_json(200, {})
        if self.path == "/_config":
            with STATE.lock:
                if "scores" in body:
                    STATE.scores = list(body["scores"].items())
                if "api_key" in body:
                    STATE.api_key = body["api_key"]
            return self.send_json(200, {})
        if self.path == "/_script":
            with STATE.lock:
                STATE.script.extend(body.get("replies", []))
            return self.send_json(200, {})
        if self.path not in ("/rerank", "/v1/rerank"):
            return self.send_json(404, {"error": "not found"})
        with STATE.lock:
            STATE.requests += 1
            STATE.last_body = body
            STATE.last_headers = {k.lower(): v for k, v in self.headers.items()}
            step = STATE.script.pop(0) if STATE.script else {"kind": "ok"}
            key = STATE.api_key
        kind = step.get("kind", "ok")
        if kind == "slow":
            time.sleep(step.get("ms", 1000) / 1000.0)
        if kind == "error":
            msg = "scripted failure"
            if step.get("echo_auth"):  # some proxies echo the request's headers in errors
                msg += " (got Authorization: %s)" % self.headers.get("Authorization", "")
            return self.send_json(step.get("status", 500), {"error": msg, "message": msg})
        if kind == "bad_json":
            return self.send_json(200, None, raw=b"{not json")
        if self.path == "/rerank":
            return self.tei(body, kind)
        return self.cohere(body, kind, key)

    def tei(self, body, kind):
        if not isinstance(body, dict) or not isinstance(body.get("query"), str) or \
                not isinstance(body.get("texts"), list):
            return self.send_json(422, {"error": "Failed to deserialize the JSON body",
                                        "error_type": "Validation"})
        texts = body["texts"]
        if not texts:
            return self.send_json(422, {"error": "`texts` cannot be empty",
                                        "error_type": "Validation"})
        if len(texts) > STATE.max_batch:
            return self.send_json(413, {"error": "batch size %d > maximum allowed batch size %d"
                                        % (len(texts), STATE.max_batch),
                                        "error_type": "Validation"})
        if not all(isinstance(t, str) for t in texts):
            return self.send_json(422, {"error": "texts must be strings",
                                        "error_type": "Validation"})
        with STATE.lock:
            STATE.texts += len(texts)
        out = [{"index": i, "score": score(body["query"], t)} for i, t in enumerate(texts)]
        if body.get("return_text"):
            for o in out:
                o["text"] = texts[o["index"]]
        out.sort(key=lambda o: -o["score"])
        if kind == "short":
            out = out[:-1]
        self.send_json(200, out)

    def cohere(self, body, kind, key):
        auth = self.headers.get("Authorization", "")
        if key is not None and auth != "Bearer " + key:
            return self.send_json(401, {"message": "invalid api token"})
        if not isinstance(body, dict) or not isinstance(body.get("model"), str) or \
                not body.get("model"):
            return self.send_json(400, {"message": "invalid request: model must be specified"})
        docs = body.get("documents")
        if not isinstance(body.get("query"), str) or not isinstance(docs, list) or not docs:
            return self.send_json(400, {"message": "invalid request: query and documents are "
                                                   "required"})
        texts = [d["text"] if isinstance(d, dict) else d for d in docs]
        if not all(isinstance(t, str) for t in texts):
            return self.send_json(400, {"message": "invalid request: documents must be strings"})
        top_n = body.get("top_n", len(texts))
        if not isinstance(top_n, int) or top_n < 1:
            return self.send_json(400, {"message": "invalid request: top_n must be positive"})
        with STATE.lock:
            STATE.texts += len(texts)
        res = [{"index": i, "relevance_score": score(body["query"], t)}
               for i, t in enumerate(texts)]
        res.sort(key=lambda o: -o["relevance_score"])
        res = res[:top_n]
        if kind == "short":
            res = res[:-1]
        self.send_json(200, {"id": str(uuid.uuid4()), "results": res,
                             "meta": {"api_version": {"version": "1"},
                                      "billed_units": {"search_units": 1}}})


def main():
    global STATE
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--max-batch", type=int, default=32)
    a = ap.parse_args()
    STATE = State(a.api_key, a.max_batch)
    return serve(a.host, a.port, Handler, STATE)

if __name__ == "__main__":
    sys.exit(main())
