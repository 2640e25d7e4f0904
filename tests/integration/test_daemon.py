# SPDX-License-Identifier: MIT
"""
test_daemon.py - whole-daemon behaviour: RAG disabled (environment and config), ingest on start,
a busy ingest (409) while concurrent retrievals run, clean SIGTERM, the vector index rebuilt when
missing, corrupt or stale, CLI ingest forwarded to (or refused by) a running daemon, `ragd query`
beside a daemon, a second daemon on the same data dir, and durability after SIGKILL mid-ingest.
"""
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time

from corpus import REFUND_QUESTION, unique_word, write_corpus, write_generated
from harness import (check, eq, expect_error, faiss_only, fixture, free_port, http_call, shared,
                     short, test,
                     wait_until, write)


def check_disabled(d):
    h = d.health()
    eq(h.get("rag_enabled"), False, "health rag_enabled")
    r = d.call("POST", "/retrieve", {"query": REFUND_QUESTION, "k": 3})
    eq(r.status, 200, "status of /retrieve with RAG disabled (%r)" % r)
    ans = r.json
    eq(ans.get("rag_enabled"), False, "rag_enabled")
    eq(ans.get("results"), [], "results")
    eq(ans.get("context"), "", "context")
    eq(ans.get("sources"), [], "sources")
    eq(ans.get("low_confidence"), True, "low_confidence")
    check("disabled" in str(ans.get("message", "")).lower(), "message %r lacks 'disabled'"
          % ans.get("message"))
    check(isinstance(ans.get("timings_ms"), dict), "timings_ms: %r" % ans.get("timings_ms"))


@test
def rag_disabled_by_environment(t):
    corpus = t.path("corpus")
    write_corpus(corpus)
    d = t.serve(env={"RAG_ENABLED": "false"}, args=("--log-level", "debug"))
    d.ingest(corpus)
    check_disabled(d)


@test
def rag_disabled_by_config(t):
    cfg = t.path("ragd.ini")
    write(cfg, "[rag]\nenabled = false\n")
    d = t.serve(config=cfg)
    check_disabled(d)
    r = t.cli("check-config", "--config", cfg)
    check(re.search(r"(?ms)^\[rag\][^\[]*^\s*enabled\s*=\s*false", r.out),
          "check-config does not show [rag] enabled = false: %r" % r)


@test
def serve_ingests_paths_on_start(t):
    corpus = t.path("corpus")
    n = write_corpus(corpus)
    d = t.serve(env={"RAGD_INGEST_PATHS": corpus}, no_ingest=False)

    def done():
        h = d.health()
        ok = h["store"]["documents"] == n and not h["ingest"]["running"]
        return h if ok else None
    h = wait_until(done, 60, "the start-up ingest of %d files" % n)
    eq(h["ingest"]["last_ok"], True, "ingest.last_ok")
    eq(h["store"]["consistent"], True, "store.consistent")
    ans = d.retrieve({"query": REFUND_QUESTION, "k": 1})
    eq(ans["results"][0]["source"], "business/refunds.md", "top source")


@test
def serve_start_with_missing_ingest_path_warns(t):
    missing = t.path("no-such-docs")
    d = t.serve(env={"RAGD_INGEST_PATHS": missing}, no_ingest=False)
    eq(d.health()["status"], "ok", "health with a missing ingest path")
    wait_until(lambda: "no-such-docs" in d.stderr_text(), 20,
               "a warning naming the missing path on stderr")
    check(d.running(), "daemon exited because of a missing ingest path")
    eq(d.health()["store"]["documents"], 0, "documents")


@test
@faiss_only
def serve_sigterm_exits_zero_and_saves_index(t):
    corpus = t.path("corpus")
    write_corpus(corpus)
    d = t.serve()
    d.ingest(corpus)
    rc = d.stop(signal.SIGTERM)
    eq(rc, 0, "exit status after SIGTERM")
    for name in ("index.faiss", "index.faiss.meta"):
        check(os.path.isfile(t.path("data", name)), "%s missing after shutdown" % name)


def one_shot(q, port, results, errors):
    try:
        r = http_call(port, "POST", "/retrieve", q)
        if r.status != 200:
            errors.append("%s -> %r" % (short(q, 60), r))
            return
        ans = r.json
        if not isinstance(ans.get("results"), list):
            errors.append("%s -> no results list: %s" % (short(q, 60), short(ans)))
            return
        results.append(ans)
    except Exception as e:  # noqa: BLE001 - every failure is collected and reported
        errors.append("%s -> %s: %s" % (short(q, 60), type(e).__name__, e))


def try_busy(d, ingester, path):
    """While thread `ingester` runs an ingest, waits for /health to show it running and posts a
    second ingest. Returns: that answer, or None if the first ended before it was seen."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and ingester.is_alive():
        h = http_call(d.port, "GET", "/health")
        if h.status == 200 and h.json["ingest"]["running"]:
            return http_call(d.port, "POST", "/ingest", {"path": path}, timeout=300)
        time.sleep(0.01)
    return None


@test
def ingest_busy_while_running_and_concurrent_retrievals(t):
    corpus = t.path("corpus")
    n = write_corpus(corpus)
    gen_root = t.path("gen")
    write_generated(gen_root, 200, paragraphs=4)
    d = t.serve()
    d.ingest(corpus)

    ingest_result = {}

    def run_ingest():
        try:
            ingest_result["resp"] = http_call(d.port, "POST", "/ingest", {"path": gen_root},
                                              timeout=300)
        except Exception as e:  # noqa: BLE001
            ingest_result["exc"] = e
    ingester = threading.Thread(target=run_ingest)
    ingester.start()

    answers, errors = [], []
    refund_tops = []

    def worker(wid):
        for i in range(50):
            if i % 2 == 0:
                q = {"query": REFUND_QUESTION, "k": 3}
            else:
                q = {"query": "%s alpha bravo" % unique_word((wid * 50 + i) % 200), "k": 5}
            before = len(answers)
            one_shot(q, d.port, answers, errors)
            if i % 2 == 0 and len(answers) > before:
                refund_tops.append(answers[-1]["results"][0]["source"]
                                   if answers[-1]["results"] else None)
    workers = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for w in workers:
        w.start()

    busy = try_busy(d, ingester, corpus)
    ingester.join(300)
    for w in workers:
        w.join(300)
    check(not ingester.is_alive() and not any(w.is_alive() for w in workers),
          "threads did not finish")

    check("exc" not in ingest_result, "POST /ingest failed: %r" % ingest_result.get("exc"))
    resp = ingest_result["resp"]
    eq(resp.status, 200, "status of the big ingest (%r)" % resp)
    eq(resp.json["documents"]["added"], 200, "documents.added of the big ingest")
    check(not errors, "%d of 400 retrievals failed, e.g. %s" % (len(errors), errors[:3]))
    eq(len(answers), 400, "successful retrievals")
    check(all(s == "business/refunds.md" for s in refund_tops),
          "refund question answered wrongly during the ingest: %s"
          % [s for s in refund_tops if s != "business/refunds.md"][:5])

    h = d.health()
    eq(h["store"]["documents"], n + 200, "documents after the big ingest")
    eq(h["store"]["consistent"], True, "store.consistent")
    eq(h["ingest"]["running"], False, "ingest.running")
    for i in (0, 123, 199):
        rel = "gen/d%02d/file%04d.md" % (i % 10, i)
        ans = d.retrieve({"query": unique_word(i), "k": 5, "filters": {"source": rel}})
        check(any(unique_word(i) in r["text"] for r in ans["results"]),
              "generated file %s not retrievable: %s" % (rel, short(ans)))

    # If the big ingest was too quick to catch running, retry with resets (they re-embed all).
    for _ in range(3):
        if busy is not None:
            break
        th = threading.Thread(target=http_call, args=(d.port, "POST", "/ingest",
                                                      {"path": gen_root, "reset": True}),
                              kwargs={"timeout": 300})
        th.start()
        busy = try_busy(d, th, corpus)
        th.join(300)
    check(busy is not None, "every ingest finished before /health showed it running; "
          "could not test 409")
    j = busy.json
    check(busy.status == 409 and j.get("error", {}).get("code") == "busy",
          "second ingest while one runs: expected 409 busy, got %r" % busy)
    eq(d.health()["store"]["consistent"], True, "store.consistent after the busy attempts")


def restart_and_check(t, what, chunks):
    d = t.serve()
    h = d.health()
    s = h["store"]
    eq(h["status"], "ok", "%s: status" % what)
    eq(s["consistent"], True, "%s: store.consistent" % what)
    eq(s["chunks"], chunks, "%s: chunks" % what)
    eq(s["index_vectors"], chunks, "%s: index_vectors" % what)
    ans = d.retrieve({"query": REFUND_QUESTION, "k": 1})
    eq((ans["results"][0]["source"], ans["results"][0]["heading"]),
       ("business/refunds.md", "Refund policy > Exceptions"), "%s: top result" % what)
    eq(d.stop(), 0, "%s: exit status after SIGTERM" % what)
    check(os.path.isfile(t.path("data", "index.faiss")), "%s: index.faiss not saved again"
          % what)
    return d


@test
@faiss_only
def index_rebuilt_when_missing_or_corrupt(t):
    corpus = t.path("corpus")
    write_corpus(corpus)
    d = t.serve()
    d.ingest(corpus)
    chunks = d.health()["store"]["chunks"]
    d.stop()
    idx = t.path("data", "index.faiss")
    check(os.path.isfile(idx), "index.faiss not written at %s" % idx)

    os.remove(idx)
    restart_and_check(t, "index.faiss deleted", chunks)

    size = os.path.getsize(idx)
    with open(idx, "r+b") as f:
        f.seek(size // 2)
        f.write(os.urandom(min(4096, size - size // 2)))
    restart_and_check(t, "index.faiss corrupted in the middle", chunks)

    with open(idx, "r+b") as f:
        f.truncate(10)
    restart_and_check(t, "index.faiss truncated", chunks)

    os.remove(idx + ".meta")
    restart_and_check(t, "index.faiss.meta deleted", chunks)

    write(idx, b"")
    restart_and_check(t, "index.faiss empty", chunks)


@test
@faiss_only
def index_stale_generation_rebuilt(t):
    corpus = t.path("corpus")
    write_corpus(corpus)
    d = t.serve()
    d.ingest(corpus)
    d.stop()
    idx = t.path("data", "index.faiss")
    shutil.copy(idx, t.path("old.faiss"))
    shutil.copy(idx + ".meta", t.path("old.faiss.meta"))
    write(t.path("more", "late.md"), "# Parking\n\n## Visitors\n\nVisitors park behind the "
          "greenhouse next to the quince tree.\n")
    r = t.cli("ingest", "--path", t.path("more"), "--data-dir", t.path("data"))
    eq(r.rc, 0, "CLI ingest: %r" % r)
    shutil.copy(t.path("old.faiss"), idx)
    shutil.copy(t.path("old.faiss.meta"), idx + ".meta")
    d = t.serve()
    s = d.health()["store"]
    eq(s["consistent"], True, "store.consistent with a stale index")
    eq(s["index_vectors"], s["chunks"], "index_vectors with a stale index")
    ans = d.retrieve({"query": "visitors park behind the greenhouse quince tree", "k": 1})
    eq(ans["results"][0]["source"], "late.md", "document added after the stale index was saved")


@test
def config_limits_honoured(t):
    corpus = t.path("corpus")
    write_corpus(corpus)
    cfg = t.path("ragd.ini")
    write(cfg, "[server]\nmax_body_bytes = 4096\n\n[retrieve]\ndefault_k = 2\nmax_k = 3\n\n"
          "[ingest]\nmax_file_bytes = 2048\n")
    write(os.path.join(corpus, "huge.md"), "# Huge\n\n" + "lorem ipsum dolor sit amet. " * 200)
    d = t.serve(config=cfg)
    rep = d.ingest(corpus)
    eq(rep["documents"]["failed"], 1, "documents.failed with a file over max_file_bytes")
    eq([(e["source"], e["code"]) for e in rep["errors"]], [("huge.md", "too_large")],
       "errors for a file over max_file_bytes")
    q = "refund order parcel invoice password coffee support customs"
    eq(len(d.retrieve({"query": q})["results"]), 2, "results with default_k = 2")
    eq(len(d.retrieve({"query": q, "k": 3})["results"]), 3, "results with k = max_k = 3")
    expect_error(d.call("POST", "/retrieve", {"query": q, "k": 4}), 400, "invalid_request", "k",
                 what="k over max_k = 3")
    body = json.dumps({"query": q}).encode()
    padded = body[:-1] + b" " * (4097 - len(body)) + b"}"
    expect_error(d.call("POST", "/retrieve", raw=padded), 413, "payload_too_large",
                 what="4097-byte body with max_body_bytes = 4096")
    r = d.call("POST", "/retrieve", raw=padded[:-2] + b"}")
    eq(r.status, 200, "4096-byte body with max_body_bytes = 4096 (%r)" % r)


@fixture("served_dir")
def served_fixture(ctx):
    corpus = ctx.path("corpus")
    n = write_corpus(corpus)
    write(ctx.path("other", "guide.md"), "# Warehouse guide\n\n## Forklift safety\n\nOnly "
          "certified staff drive the forklift; wear the orange helmet in aisle nine.\n")
    d = ctx.serve()
    d.ingest(corpus)
    return {"d": d, "n": n, "ctx": ctx}


@shared("served_dir")
def cli_query_beside_daemon(t, fx):
    d = fx["d"]
    r = t.cli("query", REFUND_QUESTION, "--json", "-k", "2", "--data-dir", d.data_dir)
    eq(r.rc, 0, "exit status of ragd query beside a daemon: %r" % r)
    ans = r.json()
    eq(ans["results"][0]["source"], "business/refunds.md", "top source")
    eq(d.health()["store"]["consistent"], True, "daemon store.consistent after the query")


@shared("served_dir")
def cli_ingest_forwarded_or_refused(t, fx):
    d = fx["d"]
    before = d.health()["store"]
    other = fx["ctx"].path("other")
    r = t.cli("ingest", "--path", other, "--data-dir", d.data_dir, "--json", timeout=120)
    h = d.health()
    eq(h["status"], "ok", "daemon status after the CLI ingest")
    eq(h["store"]["consistent"], True, "store.consistent after the CLI ingest")
    if r.rc == 0:
        check(re.search(r"forward|daemon|127\.0\.0\.1:%d" % d.port, r.err, re.I),
              "stderr does not say the ingest was forwarded: %r" % r)
        rep = r.json()
        eq(rep["documents"]["added"], 1, "documents.added of the forwarded ingest")
        eq(h["store"]["documents"], before["documents"] + 1, "documents after forwarding")
        ans = d.retrieve({"query": "forklift safety orange helmet", "k": 1})
        eq(ans["results"][0]["source"], "guide.md", "forwarded document retrievable")
    else:
        check(str(d.pid) in r.err, "refusal does not name the daemon's pid %d: %r"
              % (d.pid, r))
        eq(h["store"], before, "store after a refused CLI ingest")
    ans = d.retrieve({"query": REFUND_QUESTION, "k": 1})
    eq(ans["results"][0]["source"], "business/refunds.md", "retrieval after the CLI ingest")


@shared("served_dir")
def cli_ingest_relative_path_forwarded(t, fx):
    """A relative --path means the CLI's working directory, not the daemon's."""
    d = fx["d"]
    write(t.path("reldocs", "parking.md"), "# Parking\n\n## Visitors\n\nVisitors park behind "
          "the greenhouse next to the quince tree.\n")
    before = d.health()["store"]
    r = t.cli("ingest", "--path", "reldocs", "--data-dir", d.data_dir, "--json", cwd=t.tmp)
    if r.rc != 0:
        check(str(d.pid) in r.err, "relative-path ingest failed without naming the pid: %r" % r)
        eq(d.health()["store"], before, "store after a refused relative-path ingest")
        return
    rep = r.json()
    eq(rep["root"], os.path.realpath(t.path("reldocs")), "root of a relative-path ingest")
    eq(rep["documents"]["added"], 1, "documents.added of a relative-path ingest")
    ans = d.retrieve({"query": "visitors park behind the greenhouse quince tree", "k": 1})
    eq(ans["results"][0]["source"], "parking.md", "relative-path document retrievable")


@shared("served_dir")
def second_serve_on_same_dir_refused(t, fx):
    d = fx["d"]
    r = t.cli("serve", "--listen", "127.0.0.1:%d" % free_port(),
              "--data-dir", d.data_dir, "--no-ingest", timeout=60)
    check(r.rc != 0, "a second daemon started on the same data dir: %r" % r)
    check(str(d.pid) in r.err, "message does not name the running daemon's pid %d: %r"
          % (d.pid, r))
    eq(d.health()["store"]["consistent"], True, "first daemon's store after the attempt")


@test
def durability_sigkill_during_cli_ingest(t):
    src = t.path("src")
    rels = write_generated(src, 400, paragraphs=2, seed=11)
    data = t.path("data")
    # The CLI batches by bytes alone (1 MiB by default: this whole corpus, 220 KB, in one
    # commit); small batches (~15 files) keep the kill in the middle of the ingest.
    p = t.popen(["ingest", "--path", src, "--data-dir", data], stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, env={"RAGD_INGEST_COMMIT_BATCH_BYTES": "8192"})
    lines = queue.Queue()

    def reader():
        for raw in p.stderr:
            lines.put(raw.decode("utf-8", "replace"))
        lines.put(None)
    th = threading.Thread(target=reader, daemon=True)
    th.start()
    seen, last, captured = 0, 0, []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            break
        captured.append(line)
        m = re.match(r"ingest: (\d+)/(\d+) ", line)
        if m:
            seen += 1
            last = int(m.group(1))
            if seen >= 20:
                p.send_signal(signal.SIGKILL)
                break
    p.wait(30)
    check(seen >= 20, "CLI ingest printed %d progress lines before ending (exit %r):\n%s"
          % (seen, p.returncode, "".join(captured[-20:])))
    d = t.serve()
    h = d.health()
    eq(h["status"], "ok", "status after SIGKILL mid-ingest")
    s = h["store"]
    check(s["documents"] >= last, "documents %d < last progress count %d"
          % (s["documents"], last))
    eq(s["consistent"], True, "store.consistent after SIGKILL mid-ingest")
    eq(s["index_vectors"], s["chunks"], "index_vectors after SIGKILL mid-ingest")
    rep = d.ingest(src)
    docs = rep["documents"]
    eq(docs["added"] + docs["unchanged"] + docs["updated"], 400, "documents present after the "
       "follow-up ingest (%s)" % docs)
    eq(docs["failed"], 0, "documents.failed")
    h = d.health()
    eq(h["store"]["documents"], 400, "documents after the follow-up ingest")
    eq(h["store"]["consistent"], True, "store.consistent after the follow-up ingest")
    for i in (0, 19, 250, 399):
        ans = d.retrieve({"query": unique_word(i), "k": 5, "filters": {"source": rels[i]}})
        check(any(unique_word(i) in r["text"] for r in ans["results"]),
              "file %s not retrievable: %s" % (rels[i], short(ans)))
    th.join(10)
