#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
fake_chat.py - a fake OpenAI chat-completions server for ragd's tests (stdlib only).

    python3 tests/fake_chat.py --host 127.0.0.1 --port 0 [--api-key KEY]

Prints exactly one line `READY <port>` on stdout once listening, then serves (threaded):

  POST /v1/chat/completions  (also under any prefix ending in /chat/completions, so several
                       "base URLs" can point at one fake: /ft/v1/chat/completions)
                       the real protocol: `model` and `messages` required (400 in OpenAI's error
                       shape otherwise), `stream` with server-sent events ("data: {chunk}\\n\\n",
                       a first chunk with the role, the content in word-sized deltas, tool calls
                       as a name fragment then an arguments fragment, a chunk with
                       finish_reason, a usage chunk when stream_options.include_usage, then
                       "data: [DONE]"), `usage` with prompt/completion tokens. The default answer
                       is "You asked: <last user text>." followed by " Grounded in [1]." when the
                       system prompt holds a fenced context; a scripted reply overrides it.
  GET  /_requests      {"requests": [{"path", "body", "headers"}...], "disconnects": N}: every chat
                       request received (body as JSON), and how many clients went away before
                       their answer was written.
  POST /_reset         forgets requests and the script, releases hanging requests.
  POST /_script        {"replies": [...]} queued, one per coming chat request, in order:
                       {"status": 429, "code": "rate_limit_exceeded", "message": "...",
                        "retry_after_ms": "10"} answers that error;
                       {"content": "...", "tool_calls": [{"name": "...", "arguments": "{}"}],
                        "first_token_ms": N, "chunk_ms": N} answers with that content / those
                       tool calls, waiting first_token_ms before the first byte (the wait ends
                       early when the client goes away) and chunk_ms between stream chunks;
                       {"kind": "hang"} never answers (until /_reset or the client leaves);
                       {"kind": "broken_stream"} starts a stream and cuts it mid-way;
                       {"kind": "bad_json"} answers 200 with a body that is not JSON.
"""
import argparse
import json
import re
import select
import socket
import sys
import time

from fake_common import JsonHandler, ScriptedState, count_tokens, error_body, serve

def content_text(content):
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class State(ScriptedState):
    def clear(self):
        self.requests = []
        self.disconnects = 0


STATE = None


class Handler(JsonHandler):
    server_version = "fake-chat/1"

    def client_gone(self):
        """True when the client closed its end (readable with EOF)."""
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
            if not r:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def wait(self, ms, release):
        """Waits ms milliseconds; returns False (and counts it) when the client went away."""
        end = time.monotonic() + ms / 1000.0
        while time.monotonic() < end and not release.is_set():
            if self.client_gone():
                with STATE.lock:
                    STATE.disconnects += 1
                self.close_connection = True
                return False
            time.sleep(0.02)
        return True

    def do_GET(self):
        if self.path == "/_requests":
            with STATE.lock:
                snap = {"requests": list(STATE.requests), "disconnects": STATE.disconnects}
            return self.reply(200, snap)
        return self.reply(404, error_body("Unknown request URL: GET %s" % self.path))

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n > 0 else b""
        if self.path == "/_reset":
            STATE.reset()
            return self.reply(200, {"ok": True})
        if self.path == "/_script":
            with STATE.lock:
                STATE.script.extend(json.loads(raw or b"{}").get("replies", []))
            return self.reply(200, {"ok": True})
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self.reply(404, error_body("Unknown request URL: POST %s" % self.path))
        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            body = None
        with STATE.lock:
            STATE.requests.append({"path": self.path, "body": body,
                                   "headers": {k.lower(): v for k, v in self.headers.items()}})
            scripted = STATE.script.pop(0) if STATE.script else {}
            release = STATE.release
            want = STATE.api_key
        auth = self.headers.get("Authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else ""
        if not key or (want is not None and key != want):
            return self.reply(401, error_body("Incorrect API key provided.",
                                              code="invalid_api_key"))
        if not isinstance(body, dict):
            return self.reply(400, error_body("We could not parse the JSON body of your request."))
        if not isinstance(body.get("model"), str) or not body["model"]:
            return self.reply(400, error_body("you must provide a model parameter", param="model"))
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            return self.reply(400, error_body("'messages' must be a non-empty array",
                                              param="messages"))
        if "status" in scripted:
            status = int(scripted["status"])
            headers = {}
            if "retry_after_ms" in scripted:
                headers["retry-after-ms"] = str(scripted["retry_after_ms"])
            etype = "requests" if status == 429 else \
                "server_error" if status >= 500 else "invalid_request_error"
            return self.reply(status, error_body(scripted.get("message") or
                                                 "scripted failure %d" % status, etype,
                                                 scripted.get("code")), headers)
        kind = scripted.get("kind")
        if kind == "hang":
            while not release.is_set():
                if not self.wait(100, release):
                    return
            self.close_connection = True
            return
        if not self.wait(float(scripted.get("first_token_ms", 0)), release):
            return
        if kind == "bad_json":
            data = b'{"id": "x", "choices": [{"mess'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        system = "\n".join(content_text(m.get("content")) for m in msgs
                           if isinstance(m, dict) and m.get("role") == "system")
        last_user = ""
        for m in msgs:
            if isinstance(m, dict) and m.get("role") == "user":
                last_user = content_text(m.get("content"))
        if "content" in scripted:
            content = scripted["content"]
        else:
            content = "You asked: %s." % last_user.strip()
            if "<<<CONTEXT" in system:
                content += " Grounded in [1]."
        tools = scripted.get("tool_calls") or []
        prompt_tokens = sum(count_tokens(content_text(m.get("content"))) + 4
                            for m in msgs if isinstance(m, dict))
        completion_tokens = count_tokens(content) + sum(count_tokens(t.get("arguments", ""))
                                                        for t in tools)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        finish = "tool_calls" if tools else "stop"
        cid = "chatcmpl-fake%d" % int(time.monotonic() * 1000)
        created = int(time.time())
        if body.get("stream"):
            return self.stream(body, cid, created, content, tools, finish, usage,
                               float(scripted.get("chunk_ms", 0)), release,
                               kind == "broken_stream")
        message = {"role": "assistant", "content": content if content or not tools else None,
                   "refusal": None}
        if tools:
            message["tool_calls"] = [{"id": "call_%d" % i, "type": "function",
                                      "function": {"name": t["name"],
                                                   "arguments": t.get("arguments", "{}")}}
                                     for i, t in enumerate(tools)]
        self.reply(200, {"id": cid, "object": "chat.completion", "created": created,
                         "model": body["model"], "system_fingerprint": "fp_fake",
                         "choices": [{"index": 0, "message": message, "logprobs": None,
                                      "finish_reason": finish}],
                         "usage": usage})

    def stream(self, body, cid, created, content, tools, finish, usage, chunk_ms, release,
               broken):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

        def chunk(delta, finish_reason=None, extra=None):
            o = {"id": cid, "object": "chat.completion.chunk", "created": created,
                 "model": body["model"], "system_fingerprint": "fp_fake",
                 "choices": [{"index": 0, "delta": delta, "logprobs": None,
                              "finish_reason": finish_reason}]}
            if extra:
                o.update(extra)
            return o

        events = [chunk({"role": "assistant", "content": ""})]
        words = re.findall(r"\S+\s*", content)
        for w in words:
            events.append(chunk({"content": w}))
        for i, t in enumerate(tools):
            events.append(chunk({"tool_calls": [{"index": i, "id": "call_%d" % i,
                                                 "type": "function",
                                                 "function": {"name": t["name"],
                                                              "arguments": ""}}]}))
            events.append(chunk({"tool_calls": [{"index": i, "function": {
                "arguments": t.get("arguments", "{}")}}]}))
        events.append(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({"id": cid, "object": "chat.completion.chunk", "created": created,
                           "model": body["model"], "choices": [], "usage": usage})
        try:
            for i, e in enumerate(events):
                if broken and i == len(events) // 2:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(("data: %s\n\n" % json.dumps(e)).encode())
                self.wfile.flush()
                if chunk_ms and not self.wait(chunk_ms, release):
                    return
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            with STATE.lock:
                STATE.disconnects += 1


def main():
    ap = argparse.ArgumentParser(description="fake OpenAI chat-completions server")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--api-key", default=None, help="require exactly this key")
    args = ap.parse_args()
    global STATE
    STATE = State(args.api_key)
    return serve(args.host, args.port, Handler, STATE)

if __name__ == "__main__":
    sys.exit(main())
