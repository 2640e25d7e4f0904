# SPDX-License-Identifier: MIT
"""
fake_common.py - what the fake upstreams of ragd's tests share (fake_openai.py, fake_chat.py,
fake_rerank.py; stdlib only): OpenAI's error body, a token count, a JSON request handler, the
scripted state (a reply script and a release event for hanging requests) and the server loop that
prints `READY <port>` once listening.
"""
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def count_tokens(text):
    """Words and punctuation marks: a stand-in for a tokenizer's count, stable across runs."""
    return len(WORD.findall(text or ""))


def error_body(message, etype="invalid_request_error", code=None, param=None):
    """OpenAI's error shape."""
    return {"error": {"message": message, "type": etype, "param": param, "code": code}}


class ScriptedState:
    """A fake's state: lock, required API key, a release event that ends hanging requests and a
    script of queued replies. Subclasses add their own counters in clear() (called under the
    lock by reset())."""

    def __init__(self, api_key):
        self.lock = threading.Lock()
        self.api_key = api_key
        self.release = threading.Event()
        self.reset()

    def reset(self):
        with self.lock:
            self.release.set()
            self.release = threading.Event()
            self.script = []
            self.clear()

    def clear(self):
        pass


class JsonHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler with quiet logs, a JSON reply and a Content-Length body."""
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, obj, headers=None, raw=None):
        data = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""


def serve(host, port, handler, state=None):
    """Serves handler (threaded) on host:port (0: a free one), printing `READY <port>` once
    listening, until interrupted; releases state's hanging requests at the end. Returns 0."""
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128
    srv = ThreadingHTTPServer((host, port), handler)
    print("READY %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if state is not None:
            state.release.set()
        srv.server_close()
    return 0
