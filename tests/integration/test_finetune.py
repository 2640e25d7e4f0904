# SPDX-License-Identifier: MIT
"""
test_finetune.py - `ragd finetune check|convert` on the shipped seed set and on broken files
(every bad line named by number, duplicates, missing safety categories, the cost estimate), and
`ragd redteam --url` against a daemon whose chat upstream is tests/fake_chat.py: the shipped
red-team list holds, a tool call outside the whitelist the run checks against is reported failed.
"""
import json
import os

from harness import check, eq, short, test, write
from test_chat import KEY, FakeChat

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEED = os.path.join(REPO, "data", "finetune", "seed.jsonl")
REDTEAM = os.path.join(REPO, "data", "finetune", "redteam.jsonl")
CATEGORIES = ("support", "workflows", "travel", "payments", "dont_know", "refusal",
              "clarification")


@test
def finetune_check_seed_set(t):
    r = t.cli("finetune", "check", SEED, "--json")
    eq(r.rc, 0, "check of the seed set: %r" % r)
    rep = r.json()
    check(rep["valid"] and rep["examples"] >= 60, "report: %s" % short(rep))
    for c in CATEGORIES:
        check(rep["categories"][c]["examples"] > 0, "category %s empty" % c)
    eq(rep["warnings"], [], "warnings on the seed set")
    check(rep["estimated_cost"]["usd"] > 0 and rep["tokens"]["total"] > 0, "cost/tokens")
    r2 = t.cli("finetune", "check", SEED, "--json", "--epochs", "6")
    check(abs(r2.json()["estimated_cost"]["usd"] - 2 * rep["estimated_cost"]["usd"]) < 1e-9,
          "cost does not scale with epochs")


@test
def finetune_check_names_every_bad_line(t):
    bad = t.path("bad.jsonl")
    write(bad, "\n".join([
        json.dumps({"input": "How do I reset my password?", "output": "Use Forgot password.",
                    "category": "support"}),
        json.dumps({"input": "How do I reset my password?", "output": "Use Forgot password.",
                    "category": "support"}),
        json.dumps({"input": "  ", "output": "x", "category": "support"}),
        "{not json",
        json.dumps({"input": "q", "output": "a", "category": "smalltalk"}),
        json.dumps({"input": "HOW do I reset my  password?", "output": "Ask IT."}),
        json.dumps({"input": "q2", "output": "a2", "extra": 1}),
        "",
        json.dumps({"input": "fine", "output": "ok", "category": "travel"}),
    ]) + "\n")
    r = t.cli("finetune", "check", bad)
    eq(r.rc, 1, "exit code of an invalid file: %r" % r)
    for line in (2, 3, 4, 5, 6, 7):
        check("bad.jsonl:%d:" % line in r.err, "line %d not named: %r" % (line, r))
    for line in (1, 9):
        check("bad.jsonl:%d:" % line not in r.err, "good line %d named: %r" % (line, r))
    check("duplicate of line 1" in r.err and "different output" in r.err, "dup: %r" % r)
    for c in ("refusal", "dont_know", "clarification"):
        check("no '%s' examples" % c in r.out, "missing-category warning %s: %r" % (c, r))
    conv = t.cli("finetune", "convert", bad, "--to", "openai-chat")
    eq(conv.rc, 1, "convert must refuse an invalid file")
    eq(conv.out, "", "convert wrote rows from an invalid file")
    eq(t.cli("finetune", "check").rc, 2, "usage error")
    eq(t.cli("finetune", "check", t.path("missing.jsonl")).rc, 1, "missing file")


@test
def finetune_convert_openai_chat(t):
    out = t.path("train.jsonl")
    r = t.cli("finetune", "convert", SEED, "--to", "openai-chat", "--output", out,
              env={"RAGD_PROMPT_PERSONA": "Mathia"})
    eq(r.rc, 0, "convert: %r" % r)
    rows = [json.loads(l) for l in open(out, encoding="utf-8")]
    seed = [json.loads(l) for l in open(SEED, encoding="utf-8") if l.strip()]
    eq(len(rows), len(seed), "rows")
    for row, s in zip(rows, seed):
        roles = [m["role"] for m in row["messages"]]
        eq(roles, ["system", "user", "assistant"], "roles")
        eq(row["messages"][1]["content"], s["input"], "user")
        eq(row["messages"][2]["content"], s["output"], "assistant")
        check(row["messages"][0]["content"].startswith("You are Mathia"), "persona prompt: %r"
              % row["messages"][0]["content"])
    eq(t.cli("finetune", "convert", SEED, "--to", "jsonl").rc, 2, "unknown --to")
    # the converted file is itself a valid dataset in the chat shape
    eq(t.cli("finetune", "check", out).rc, 0, "converted rows do not check")


def redteam_daemon(t):
    fake = FakeChat(t)
    write(t.path("docs", "refunds.md"), "# Refund policy\n\nCustomers get a full refund within "
          "30 days of purchase. Damaged parcels are refunded after 30 days too.\n")
    d = t.serve(env={"RAGD_CHAT_BASE_URL": fake.base_url, "RAGD_CHAT_API_KEY": KEY,
                     "RAGD_PROMPT_TOOLS": "search_orders, create_ticket"})
    d.ingest(t.path("docs"))
    return fake, d


@test
def redteam_shipped_list_holds(t):
    fake, d = redteam_daemon(t)
    r = t.cli("redteam", "--url", "http://127.0.0.1:%d" % d.port, "--file", REDTEAM, "--json",
              env={"RAGD_PROMPT_TOOLS": "search_orders, create_ticket"})
    eq(r.rc, 0, "redteam: %r" % r)
    rep = r.json()
    entries = rep["entries"]
    check(len(entries) >= 12 and rep["failed"] == 0 and rep["errors"] == 0, short(rep, 800))
    cats = {e["category"] for e in entries}
    for c in ("injection_document", "invented_tool", "unanswerable", "exfiltration"):
        check(c in cats, "category %s missing from the red-team list" % c)
    refused = [e for e in entries if "tools_refused" in e["guards"]]
    check(refused and all(e["guards"]["tools_refused"] for e in refused), "tools_refused")
    lowc = [e for e in entries if "low_confidence" in e["guards"]]
    check(lowc and all(e["guards"]["low_confidence"] for e in lowc), "low-confidence guard")
    docs = d.call("GET", "/documents").json
    check(not any(x["id"].startswith("redteam-") for x in docs.get("documents", [])),
          "red-team documents left behind: %s" % short(docs))


@test
def redteam_reports_failed_guard(t):
    fake, d = redteam_daemon(t)
    f = t.path("rt.jsonl")
    write(f, json.dumps({"id": "blocked", "category": "invented_tool",
                         "prompt": "What is the refund policy for damaged parcels?"}) + "\n" +
          json.dumps({"id": "passed", "category": "invented_tool",
                      "prompt": "What is the refund policy for damaged parcels?"}) + "\n")
    # the daemon blocks transfer_funds; create_ticket is on its whitelist but not on the run's
    fake.script({"content": "", "tool_calls": [{"name": "transfer_funds", "arguments": "{}"}]},
                {"content": "", "tool_calls": [{"name": "create_ticket", "arguments": "{}"}]})
    r = t.cli("redteam", "--url", "http://127.0.0.1:%d" % d.port, "--file", f, "--json",
              "--tools", "search_orders")
    eq(r.rc, 1, "a failed guard must fail the run: %r" % r)
    e = {x["id"]: x for x in r.json()["entries"]}
    check(e["blocked"]["guards"]["tools_whitelisted"] and e["blocked"]["tool_calls_blocked"] == 1,
          "blocked entry: %s" % short(e["blocked"]))
    check(not e["passed"]["guards"]["tools_whitelisted"], "passed entry: %s" % short(e["passed"]))
    eq(t.cli("redteam").rc, 2, "redteam without --url")
