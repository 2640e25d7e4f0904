# SPDX-License-Identifier: MIT
"""
test_chat_node.py - the official `openai` npm client (pinned in tests/node/package.json, installed
there with `npm ci` when node_modules is missing) pointed at ragd's /v1 with ragd's bearer token
as its API key: a completion with extra body fields and a header, a stream, an error it raises as
its own BadRequestError. The chat upstream is tests/fake_chat.py. The pin, openai 6.30.1, is the
newest release that runs on the Node.js Debian 12 ships (18) and on 20: the 7.x line needs Node 22.
"""
import json
import os
import shutil
import subprocess

from corpus import REFUND_QUESTION, write_corpus
from harness import TestFailure, check, eq, short, test
from test_chat import KEY, FakeChat

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NODE_DIR = os.path.join(REPO, "tests", "node")
TOKEN = "ragd-token-for-node"


def node_ready():
    """Installs the pinned client when missing. Returns the node binary."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise TestFailure("node/npm not found: run scripts/install-deps.sh (nodejs, npm)")
    if not os.path.isfile(os.path.join(NODE_DIR, "node_modules", "openai", "package.json")):
        p = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                           capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            raise TestFailure("npm ci in tests/node failed:\n%s" % (p.stdout + p.stderr)[-2000:])
    return node


@test
def chat_official_openai_node_client(t):
    node = node_ready()
    fake = FakeChat(t)
    write_corpus(t.path("docs"))
    d = t.serve(env={"RAGD_CHAT_BASE_URL": fake.base_url, "RAGD_CHAT_API_KEY": KEY,
                     "RAGD_CHAT_MODEL": "base-model", "RAGD_SERVER_AUTH_TOKEN": TOKEN,
                     "RAGD_PROMPT_TOOLS": "search_orders"})
    r = d.call("POST", "/ingest", {"path": t.path("docs")},
               headers={"Authorization": "Bearer " + TOKEN}, timeout=300)
    check(r.status == 200, "ingest: %r" % r)
    p = subprocess.run([node, os.path.join(NODE_DIR, "chat_client.mjs"),
                        "http://127.0.0.1:%d/v1" % d.port, TOKEN, REFUND_QUESTION],
                       capture_output=True, text=True, timeout=300, cwd=NODE_DIR)
    check(p.returncode == 0, "node client failed (%d):\n%s" % (p.returncode, p.stderr[-3000:]))
    rep = json.loads(p.stdout)
    c = rep["completion"]
    eq(c["object"], "chat.completion", "object")
    check("[1]" in c["content"] and "Sources:" in c["content"], "content: %r" % c["content"])
    check(c["usage"]["prompt_tokens"] > 0, "usage: %s" % short(c))
    g = c["ragd"]
    eq(g["intent"], "search_info", "intent from the extra body")
    check(g["sources"] and all(s["source"].startswith("business") for s in g["sources"]),
          "filters from the extra body: %s" % short(g["sources"]))
    eq(g["model"], "base-model", "model")
    s = rep["stream"]
    check(s["chunks"] >= 3 and s["text"].startswith("You asked:"), "stream: %s" % short(s))
    check(s["ragd"] and s["ragd"]["retrieved"], "ragd in the last streamed chunk: %s" % short(s))
    check(s["usage"] and s["usage"]["completion_tokens"] > 0, "stream usage: %s" % short(s))
    e = rep["error"]
    check(e and e["name"] == "BadRequestError" and e["status"] == 400 and
          e["code"] == "tool_not_allowed", "error as the client sees it: %s" % short(e))
    reqs = fake.requests()
    eq(len(reqs), 2, "upstream calls (the refused one never goes)")
    eq(reqs[0]["body"]["messages"][1]["content"], "Answer like a colleague.",
       "the caller's system message after ragd's")
    check("x-ragd-collection" not in reqs[0]["headers"], "ragd headers forwarded upstream")
