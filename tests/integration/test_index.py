# SPDX-License-Identifier: MIT
"""
test_index.py - the index type from a FAISS factory string ([store] index_factory) on the real
daemon: an HNSW store re-ingested with removals stays exactly in step with SQLite (removed chunks
never come back, even at a large k), both through tombstones (few removals) and through the
rebuild from SQLite (past a tenth of the index), across a restart that reloads the saved
tombstones, and a change of index type at restart rebuilds the index in the new type.
"""
import json
import os
import shutil

from harness import check, eq, expect_error, test, write

FILES = 40


def topic(i):
    return "Topic %d: the %s procedure uses valve %d and lever %d." % (i, "abcdefghij"[i % 10],
                                                                     i * 7, i * 13)


def corpus(root):
    for i in range(FILES):
        write(os.path.join(root, "f%02d.md" % i), "# Note %d\n\n%s\n" % (i, topic(i)))


def store(d):
    s = d.health()["store"]
    eq(s["index_vectors"], s["chunks"], "index_vectors vs chunks")
    eq(s["consistent"], True, "store.consistent")
    return s


def sources(d, query, k=50):
    ans = d.retrieve({"query": query, "k": k})
    return [r["source"] for r in ans["results"]], ans


def all_live(found, live, what):
    """HNSW is approximate: a k larger than the store returns most live chunks (a sparse local
    embedding can leave a node unreachable), each once, and never a removed one."""
    eq(len(set(found)), len(found), "%s: no chunk twice" % what)
    check(set(found) <= live, "%s: removed chunks returned: %r" % (what, set(found) - live))
    check(len(found) >= len(live) * 9 // 10, "%s: %d of %d live chunks" % (what, len(found),
                                                                          len(live)))


def meta(data):
    with open(os.path.join(data, "index.faiss.meta")) as f:
        return json.load(f)


@test
def index_hnsw_reingest_with_removals(t):
    env = {"RAGD_STORE_INDEX_FACTORY": "HNSW16", "RAGD_STORE_HNSW_EF_SEARCH": "200"}
    docs, data = t.path("docs"), t.path("data")
    corpus(docs)
    d = t.serve(data, env=env, args=("--log-level", "info"))
    rep = d.ingest(docs)
    eq(rep["documents"]["added"], FILES, "documents added")
    eq(store(d)["chunks"], FILES, "one chunk per file")
    found, _ = sources(d, topic(5), k=1)
    eq(found, ["f05.md"], "the exact topic is the top hit")

    # One file rewritten and one deleted: 2 of 40 vectors leave, under a tenth: tombstones.
    write(os.path.join(docs, "f05.md"), "# Note 5\n\nCompletely different words about tea.\n")
    os.remove(os.path.join(docs, "f06.md"))
    rep = d.ingest(docs)
    eq(rep["chunks"]["removed"], 2, "chunks removed")
    eq(store(d)["chunks"], FILES - 1, "chunks after the first removals")
    check("rebuilding" not in d.stderr_text(), "no rebuild for 2 removals of 40")
    live = {"f%02d.md" % i for i in range(FILES) if i != 6}
    found, _ = sources(d, topic(5))
    all_live(found, live, "after 2 removals")
    for i in (5, 6):
        found, ans = sources(d, topic(i), k=5)
        texts = [r["text"] for r in ans["results"]]
        check("f06.md" not in found and not any(topic(5) in x for x in texts),
              "removed chunk returned for topic %d: %r" % (i, found))
    found, ans = sources(d, "different words about tea", k=1)
    eq(found, ["f05.md"], "the rewritten file is found by its new text")

    # The saved index carries its tombstones; a restart loads them instead of rebuilding.
    d.stop()
    m = meta(data)
    eq(m["factory"], "HNSW16", "meta factory")
    eq(len(m.get("tombstones", [])), 2, "tombstones in the meta")
    d = t.serve(data, env=env, args=("--log-level", "info"))
    check("loaded vector index" in d.stderr_text(), "index loaded, not rebuilt")
    store(d)
    found, _ = sources(d, topic(6))
    all_live(found, live, "after restart")

    # Ten more files deleted: past a tenth of the index, the index is rebuilt from SQLite.
    for i in range(20, 30):
        os.remove(os.path.join(docs, "f%02d.md" % i))
    d.ingest(docs)
    check("rebuilding" in d.stderr_text(), "rebuild past a tenth of the index")
    eq(store(d)["chunks"], FILES - 11, "chunks after the rebuild")
    live -= {"f%02d.md" % i for i in range(20, 30)}
    found, _ = sources(d, topic(25))
    all_live(found, live, "after the rebuild")
    d.stop()
    m = meta(data)
    dead = len(m.get("tombstones", []))
    check(dead * 10 <= m["count"] + dead, "tombstones stay under a tenth: %d" % dead)

    # Another index type at restart: the HNSW file is refused and Flat is rebuilt from SQLite.
    d = t.serve(data, env={"RAGD_STORE_INDEX_FACTORY": "Flat"}, args=("--log-level", "info"))
    check("rebuilding" in d.stderr_text(), "type change rebuilds")
    store(d)
    found, _ = sources(d, topic(7), k=1)
    eq(found, ["f07.md"], "Flat after HNSW finds the same top hit")
    d.stop()
    eq(meta(data)["factory"], "Flat", "meta factory after the change")


@test
def index_factory_invalid_stops_startup(t):
    r = t.cli("serve", "--listen", "127.0.0.1:1", "--data-dir", t.path("data"), "--no-ingest",
              env={"RAGD_STORE_INDEX_FACTORY": "IVF64,PQ8"})
    check(r.rc != 0, "serve with an IVF factory exits non-zero (rc %r)" % r.rc)
    check("index_factory" in r.err, "the error names the key: %r" % r.err[-300:])
    shutil.rmtree(t.path("data"), ignore_errors=True)


@test
def index_hnsw_ef_search_per_request(t):
    """`ef_search` in a /retrieve or /context body widens that request's HNSW search: with
    [store] hnsw_ef_search at its minimum the beam is k wide, a request asking for more finds
    every live chunk; bad values are a 400 naming the field, and a Flat store accepts and ignores
    the field."""
    env = {"RAGD_STORE_INDEX_FACTORY": "HNSW16", "RAGD_STORE_HNSW_EF_SEARCH": "1"}
    docs, data = t.path("docs"), t.path("data")
    corpus(docs)
    d = t.serve(data, env=env)
    d.ingest(docs)
    wide = d.retrieve({"query": topic(3), "k": FILES, "mode": "vector", "ef_search": 4096})
    found = [r["source"] for r in wide["results"]]
    eq(found[0], "f03.md", "the exact topic first with a wide beam")
    eq(len(set(found)), len(found), "no chunk twice")
    r = d.call("POST", "/context", {"query": topic(3), "ef_search": 64})
    eq(r.status, 200, "/context takes ef_search")
    for bad in (0, -1, 65537, "64", 1.5, None, True):
        resp = d.call("POST", "/retrieve", {"query": "valve", "ef_search": bad})
        expect_error(resp, 400, "invalid_request", "ef_search", "ef_search %r" % (bad,))
    eq(store(d)["chunks"], FILES, "store unchanged by the refused requests")
    d.stop()
    flat = t.serve(t.path("flat"), env={"RAGD_STORE_INDEX_FACTORY": "Flat"})
    flat.ingest(docs)
    a = flat.retrieve({"query": topic(4), "k": 3, "mode": "vector", "ef_search": 1})
    b = flat.retrieve({"query": topic(4), "k": 3, "mode": "vector"})
    eq([r["source"] for r in a["results"]], [r["source"] for r in b["results"]],
       "Flat ignores ef_search")
    flat.stop()


@test
def index_auto_follows_store_size(t):
    """index_factory = auto (the default): Flat below index_auto_threshold vectors, HNSW32 from
    the commit that reaches it (converted by a rebuild from SQLite, in the same ingest), kept
    down to half the threshold (also across a restart), Flat again below half. Results stay
    right through every conversion."""
    env = {"RAGD_STORE_INDEX_AUTO_THRESHOLD": "20", "RAGD_STORE_HNSW_EF_SEARCH": "200"}
    docs, data = t.path("docs"), t.path("data")
    for i in range(12):
        write(os.path.join(docs, "f%02d.md" % i), "# Note %d\n\n%s\n" % (i, topic(i)))
    d = t.serve(data, env=env, args=("--log-level", "info"))
    d.ingest(docs)
    eq(store(d)["chunks"], 12, "12 chunks")
    check("converting" not in d.stderr_text(), "12 of 20: no conversion")
    d.stop()
    eq(meta(data)["factory"], "Flat", "below the threshold: Flat")

    corpus(docs)  # 40 files
    d = t.serve(data, env=env, args=("--log-level", "info"))
    d.ingest(docs)
    check("converting the Flat index to HNSW32" in d.stderr_text(),
          "conversion logged: %r" % d.stderr_text()[-600:])
    eq(store(d)["chunks"], FILES, "every chunk indexed after the conversion")
    for i in (3, 17, 33):
        found, _ = sources(d, topic(i), k=1)
        eq(found, ["f%02d.md" % i], "HNSW32 finds topic %d" % i)
    d.stop()
    eq(meta(data)["factory"], "HNSW32", "at the threshold: HNSW32")

    # 15 left (>= half of 20): still HNSW32, and a restart keeps the saved type.
    for i in range(15, FILES):
        os.remove(os.path.join(docs, "f%02d.md" % i))
    d = t.serve(data, env=env, args=("--log-level", "info"))
    d.ingest(docs)
    eq(store(d)["chunks"], 15, "15 chunks")
    d.stop()
    eq(meta(data)["factory"], "HNSW32", "15 of 20: HNSW32 kept (hysteresis)")
    # A read-only open (`ragd query`) whose threshold says Flat uses the saved HNSW32 as it is:
    # converting would rebuild in memory for one query.
    r = t.cli("query", topic(3), "-k", "1", "--json", "--data-dir", data, "--log-level", "info",
              env=dict(env, RAGD_STORE_INDEX_AUTO_THRESHOLD="1000"))
    eq(r.rc, 0, "ragd query rc (%s)" % r.err[-300:])
    check("loaded vector index" in r.err and "rebuil" not in r.err,
          "read-only query loads the saved type: %r" % r.err[-400:])
    eq(meta(data)["factory"], "HNSW32", "read-only query changed nothing")
    d = t.serve(data, env=env, args=("--log-level", "info"))
    check("loaded vector index" in d.stderr_text(), "restart loads the HNSW32 index")
    found, _ = sources(d, topic(7), k=1)
    eq(found, ["f07.md"], "HNSW32 after restart finds topic 7")

    # 8 left (below half): Flat again.
    for i in range(8, 15):
        os.remove(os.path.join(docs, "f%02d.md" % i))
    d.ingest(docs)
    check("converting the HNSW32 index to Flat" in d.stderr_text(), "conversion back logged")
    eq(store(d)["chunks"], 8, "8 chunks")
    found, _ = sources(d, topic(2), k=1)
    eq(found, ["f02.md"], "Flat again finds topic 2")
    d.stop()
    eq(meta(data)["factory"], "Flat", "below half the threshold: Flat")


@test
def index_flat_concurrent_searches_match_serial(t):
    """Concurrent exact (Flat) searches share passes over the vectors (RAGD_FLAT_PASSES = 1:
    searches arriving while one runs are served together by the next): eight clients asking at
    once, each query with its own k and source filter, get exactly the answers (sources and
    scores) the same queries got one at a time, and /metrics counts the searches and passes."""
    import threading
    env = {"RAGD_STORE_INDEX_FACTORY": "Flat", "RAGD_SERVER_THREADS": "8",
           "RAGD_FLAT_PASSES": "1", "RAGD_FLAT_BATCH": "4"}
    docs, data = t.path("docs"), t.path("data")
    for i in range(FILES):
        write(os.path.join(docs, "ab"[i % 2], "f%02d.md" % i),
              "# Note %d\n\n%s\n" % (i, topic(i)))
    d = t.serve(data, env=env)
    eq(d.ingest(docs)["documents"]["added"], FILES, "documents added")

    def body(i):
        b = {"query": topic(i * 3 % FILES) + " lever", "k": 1 + i % 9, "mode": "vector"}
        if i % 3 == 1:
            b["filters"] = {"source": "ab"[i % 2] + "/"}
        return b

    def answer(i):
        ans = d.retrieve(body(i))
        return [(r["source"], r["score"]) for r in ans["results"]]

    queries = range(24)
    serial = {i: answer(i) for i in queries}
    for i in queries:
        check(1 <= len(serial[i]) <= 1 + i % 9, "query %d: 1..k results: %r" % (i, serial[i]))
        if i % 3 == 1:
            check(all(s.startswith("ab"[i % 2] + "/") for s, _ in serial[i]),
                  "query %d: the filter holds: %r" % (i, serial[i]))
    wrong = []

    def client(c):
        for n in range(3):
            for i in queries:
                j = (i * (c + 1) + n) % len(queries)
                try:
                    got = answer(j)
                except Exception as e:  # noqa: BLE001 - a failed request is a wrong answer
                    got = repr(e)
                if got != serial[j]:
                    wrong.append((c, j, got, serial[j]))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    eq(wrong[:3], [], "concurrent answers that differ from the serial ones")
    # Every exact search went through a pass, and no pass served more than the batch cap.
    text = d.call("GET", "/metrics").body.decode("utf-8")
    series = dict(line.split(" ", 1) for line in text.splitlines()
                  if line.startswith("ragd_flat_search_pass"))
    passes = float(series.get("ragd_flat_search_passes_total", "0"))
    searches = float(series.get("ragd_flat_search_pass_searches_total", "0"))
    check(searches >= len(queries) * 25, "searches counted: %r" % series)
    check(searches / 4 <= passes <= searches, "passes within the batch cap: %r" % series)
    d.stop()
