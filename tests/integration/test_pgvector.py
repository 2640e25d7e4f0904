# SPDX-License-Identifier: MIT
"""
test_pgvector.py - what only the pgvector backend has, against real Postgres with pgvector (PGlite,
started by tests/run.sh; run only when RAGD_IT_BACKEND=pgvector): two daemons serving one database
(one ingests, the other answers and sees the new documents), one ingest per collection across
processes (409 naming the holder; a SIGKILLed holder does not block the next ingest; a lease of
another host is honoured until it expires), and Postgres stopped and restarted under traffic
(JSON 503 within the timeout, /health down with the reason, recovery without a restart).
"""
import os
import signal
import subprocess
import threading
import time

import harness
from corpus import unique_word, write_generated
from harness import check, eq, expect_error, free_port, http_call, short, wait_until, write

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
START = os.path.join(REPO, "tests", "pg", "start.sh")


def pgvector_only(fn):
    fn.pgvector_only = True
    return harness.test(fn)


def shared_env(t, schema):
    return {"RAGD_STORE_PG_SCHEMA": schema}


def psql(sql):
    """Runs sql against the run's database with psql; returns stdout."""
    p = subprocess.run(["psql", harness.DATABASE_URL, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, timeout=120)
    check(p.returncode == 0, "psql %r failed: %s" % (sql, p.stderr.decode()))
    return p.stdout.decode().strip()


@pgvector_only
def pg_two_daemons_share_one_database(t):
    env = shared_env(t, "it_shared_%d" % os.getpid())
    a = t.serve(data_dir=t.path("a"), env=env)
    b = t.serve(data_dir=t.path("b"), env=env)
    src = t.path("src")
    rels = write_generated(src, 12, paragraphs=1, seed=5)
    rep = a.ingest(src)
    eq(rep["documents"]["added"], 12, "daemon A ingests")
    # B never ingested: it answers from the same database at once
    ans = b.retrieve({"query": unique_word(7), "k": 3})
    check(any(unique_word(7) in r["text"] for r in ans["results"]),
          "daemon B does not see A's document: %s" % short(ans))
    h = b.health()["store"]
    eq((h["documents"], h["backend"], h["pg_schema"]), (12, "pgvector", env["RAGD_STORE_PG_SCHEMA"]),
       "B counts A's documents, names its backend")
    # a change through B is seen by A
    r = b.call("POST", "/documents", {"id": "shared-1", "text": "The heliotrope valve is blue."})
    eq(r.status, 200, "push through B")
    ans = a.retrieve({"query": "heliotrope valve", "k": 1})
    eq(ans["results"][0]["source"], "push:shared-1", "A sees B's pushed document")
    check(rels, "corpus written")


@pgvector_only
def pg_ingest_lock_across_processes(t):
    env = shared_env(t, "it_lock_%d" % os.getpid())
    src = t.path("src")
    write_generated(src, 300, paragraphs=2, seed=9)
    a = t.serve(data_dir=t.path("a"), env=env)
    b = t.serve(data_dir=t.path("b"), env=env)
    r = a.call("POST", "/ingest", {"path": src, "wait": False})
    eq(r.status, 202, "A starts an ingest: %r" % r)
    job = r.json["job_id"]
    # A holds the collection's lease once its ingest has begun files
    wait_until(lambda: a.call("GET", "/jobs/" + job).json["progress"]["files_done"] >= 1, 120,
               "A's ingest under way")

    r = b.call("POST", "/ingest", {"path": src})
    expect_error(r, 409, "busy", what="second ingest of one collection")
    check("pid %d" % a.pid in r.json["error"]["message"],
          "the 409 does not name the holder (pid %d): %r" % (a.pid, r))
    # another collection is not blocked
    other = t.path("other")
    write(os.path.join(other, "x.md"), "# Other\n\nThe ochre lantern hangs low.\n")
    r = b.call("POST", "/ingest", {"path": other, "collection": "other"}, timeout=300)
    eq(r.status, 200, "B ingests another collection meanwhile: %r" % r)
    # SIGKILL the holder mid-ingest: the next ingest proceeds (its lease does not block)
    a.stop(sig=signal.SIGKILL)
    r = b.call("POST", "/ingest", {"path": src}, timeout=600)
    eq(r.status, 200, "B's ingest after A was killed: %r" % r)
    eq(b.health()["store"]["documents"], 301, "every document present")
    # a lease held by a process on another host is honoured until it expires
    psql("INSERT INTO it_lock_%d.ingest_leases VALUES ('default', 'ragd pid 1 on elsewhere', "
         "clock_timestamp() + interval '3 seconds', 'elsewhere', 1) ON CONFLICT (collection) DO "
         "UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at, host = "
         "EXCLUDED.host, pid = EXCLUDED.pid" % os.getpid())
    r = b.call("POST", "/ingest", {"path": src})
    expect_error(r, 409, "busy", what="lease of another host")
    check("elsewhere" in r.json["error"]["message"], "409 names the other host: %r" % r)
    wait_until(lambda: b.call("POST", "/ingest", {"path": src}).status == 200, 120,
               "an ingest once the other host's lease expired")


def pglite_start(t, port, data):
    pidfile, log = t.path("pglite.pid"), t.path("pglite.log")
    p = subprocess.run([START, str(port), data, pidfile, log], capture_output=True, timeout=300)
    check(p.returncode == 0, "PGlite did not start: %s" % p.stderr.decode()[-2000:])
    with open(pidfile) as f:
        pid = int(f.read().strip())
    return pid, p.stdout.decode().strip()


def pglite_stop(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(300):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


@pgvector_only
def pg_restart_under_traffic(t):
    port = free_port()
    pid, url = pglite_start(t, port, t.path("pgdata"))
    try:
        cfg = t.path("ragd.ini")
        write(cfg, "[store]\npg_timeout_ms = 1500\n")
        secret = "Pw-%d-x" % os.getpid()  # PGlite accepts any password: it must never show
        d = t.serve(config=cfg, env={"DATABASE_URL": url.replace("postgres@",
                                                                 "postgres:%s@" % secret)})
        src = t.path("src")
        write_generated(src, 10, paragraphs=1, seed=3)
        d.ingest(src)
        body = {"query": unique_word(4), "k": 2}
        eq(d.call("POST", "/retrieve", body).status, 200, "retrieve before the stop")
        stop = threading.Event()
        statuses = []

        def traffic():
            while not stop.is_set():
                try:
                    statuses.append(http_call(d.port, "POST", "/retrieve", body, timeout=30).status)
                except OSError as e:
                    statuses.append(str(e))
        th = threading.Thread(target=traffic, daemon=True)
        th.start()
        pglite_stop(pid)
        r = wait_until(lambda: (lambda x: x if x.status == 503 else None)(
            d.call("POST", "/retrieve", body, timeout=30)), 60, "a 503 while Postgres is down")
        expect_error(r, 503, "unavailable", what="retrieve with Postgres down")
        check("postgres" in r.json["error"]["message"].lower(), "503 names postgres: %r" % r)
        h = d.call("GET", "/health")
        eq(h.status, 503, "/health while Postgres is down")
        eq(h.json["status"], "down", "/health status")
        check(any("postgres" in x.lower() for x in h.json.get("reasons", [])),
              "/health gives the reason: %s" % short(h.json))
        pid, _ = pglite_start(t, port, t.path("pgdata"))
        ans = wait_until(lambda: (lambda x: x.json if x.status == 200 else None)(
            d.call("POST", "/retrieve", body, timeout=30)), 120, "recovery once Postgres is back")
        check(any(unique_word(4) in x["text"] for x in ans["results"]),
              "the data survived the restart: %s" % short(ans))
        h = d.call("GET", "/health")
        eq(h.json["status"], "ok", "/health after recovery")
        check(":<redacted>@" in h.json["store"]["database"], "database URL shown redacted: %s"
              % short(h.json["store"]))
        for text in (h.body.decode(), r.body.decode(), d.stderr_text()):
            check(secret not in text, "the database password leaked: %s" % short(text))
        stop.set()
        th.join(60)
        check(all(s in (200, 503) for s in statuses),
              "every request under traffic got 200 or a JSON 503: %r" % sorted(set(map(str,
                                                                                   statuses))))
    finally:
        pglite_stop(pid)


@pgvector_only
def pg_migrate_both_ways_without_embedding(t):
    src = t.path("src")
    write_generated(src, 30, paragraphs=2, seed=21)
    write(os.path.join(t.path("team"), "t.md"), "# Team\n\nThe saffron kettle is descaled monthly.\n")
    faiss = {"VECTOR_BACKEND": "faiss"}
    fdata = t.path("fdata")
    eq(t.cli("ingest", "--path", src, "--data-dir", fdata, env=faiss).rc, 0, "faiss ingest")
    eq(t.cli("ingest", "--path", t.path("team"), "--collection", "team", "--data-dir", fdata,
             env=faiss).rc, 0, "faiss ingest into a second collection")
    schema = "it_mig_%d" % os.getpid()
    env = {"RAGD_STORE_PG_SCHEMA": schema}
    r = t.cli("migrate", "--to", "pgvector", "--database-url", harness.DATABASE_URL,
              "--data-dir", fdata, env=env, timeout=600)
    eq(r.rc, 0, "migrate --to pgvector: %r" % r)
    rep = r.json()
    eq((rep["collections"], rep["documents"], rep["verified"]), (2, 31, True), "migrate report")
    eq(rep["copied"]["chunks_without_embedding"], 0, "every chunk has its vector")
    check(rep["copied"]["embeddings"] > 0, "embeddings copied: %r" % rep)
    # re-run: nothing to do
    again = t.cli("migrate", "--to", "pgvector", "--database-url", harness.DATABASE_URL,
                  "--data-dir", fdata, env=env, timeout=600).json()
    eq((again["copied"]["documents"], again["copied"]["unchanged"]), (0, 31), "second migrate")
    # the migrated store answers like the original, and an ingest of the same files embeds nothing
    d = t.serve(data_dir=t.path("pgd"), env=env)
    q = {"query": unique_word(12) + " " + unique_word(12), "k": 3}
    eq(d.retrieve(q)["results"][0]["source"], "gen/d02/file0012.md", "pgvector answers")
    rep = d.ingest(src)
    eq((rep["documents"]["unchanged"], rep["chunks"]["embedded"]), (30, 0),
       "ingest after migrate: unchanged, nothing embedded")
    ans = d.retrieve({"query": "saffron kettle", "collection": "team", "k": 1})
    eq(ans["results"][0]["source"], "t.md", "the second collection came along")
    d.stop()
    # and back to a new faiss data dir
    back = t.path("back")
    r = t.cli("migrate", "--to", "faiss", "--database-url", harness.DATABASE_URL,
              "--data-dir", back, env=env, timeout=600)
    eq(r.rc, 0, "migrate --to faiss: %r" % r)
    eq(r.json()["documents"], 31, "documents back in faiss")
    q2 = t.cli("query", unique_word(12), "--json", "--data-dir", back, env=faiss)
    eq(q2.json()["results"][0]["source"], "gen/d02/file0012.md", "faiss copy answers")
    bad = t.cli("migrate", "--to", "mysql", "--data-dir", back, env=faiss)
    eq(bad.rc, 2, "unknown --to is a usage error")


@pgvector_only
def pg_ef_search_in_config_and_per_request(t):
    """pgvector takes hnsw.ef_search in 1..1000, ragd's own bound is 65536 (FAISS): a configured
    [store] hnsw_ef_search above 1000 is clamped at the session's setup (it used to fail every
    connection, so every search answered 503), and a request's `ef_search` is applied to that
    search alone (SET LOCAL in the search's own implicit transaction), clamped likewise; every
    value finds the exact top hit of a small store."""
    def topic(i):
        return "Topic %d: the %s procedure uses valve %d and lever %d." % (
            i, "abcdefghij"[i % 10], i * 7, i * 13)
    docs = t.path("docs")
    for i in range(40):
        write(os.path.join(docs, "f%02d.md" % i), "# Note %d\n\n%s\n" % (i, topic(i)))
    d = t.serve(t.path("data"), env={"RAGD_STORE_HNSW_EF_SEARCH": "4096"})
    d.ingest(docs)
    for ef in (None, 1, 40, 1000, 65536):
        body = {"query": topic(5), "k": 5, "mode": "vector"}
        if ef is not None:
            body["ef_search"] = ef
        r = d.call("POST", "/retrieve", body)
        eq(r.status, 200, "ef_search %r answers 200: %s" % (ef, short(r.body)))
        eq(r.json["results"][0]["source"], "f05.md", "ef_search %r: exact top hit" % (ef,))
    d.stop()
