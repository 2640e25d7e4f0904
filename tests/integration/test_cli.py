# SPDX-License-Identifier: MIT
"""
test_cli.py - the command line: --version, --help everywhere, usage errors (exit 2), config
errors naming file:line, the pgvector refusal, check-config's redaction, the embedding-dims
mismatch and its --reset hint, and `ragd ingest --json` followed by `ragd query --json`.
"""
import os
import re

from corpus import FILES, REFUND_QUESTION, write_corpus
from harness import check, eq, free_port, is_int, short, test, write

SUBCOMMANDS = ("serve", "ingest", "query", "check-config")
RETRIEVE_KEYS = {"query", "rag_enabled", "low_confidence", "results", "context", "sources",
                 "timings_ms"}


@test
def cli_version(t):
    r = t.cli("--version")
    eq(r.rc, 0, "exit status of ragd --version")
    check(re.search(r"\b0\.1\.0\b", r.out), "--version stdout lacks 0.1.0: %r" % r)


@test
def cli_help_everywhere(t):
    for args in [("--help",)] + [(sub, "--help") for sub in SUBCOMMANDS]:
        r = t.cli(*args)
        eq(r.rc, 0, "exit status of ragd %s" % " ".join(args))
        check("usage" in r.out.lower(), "ragd %s: no usage on stdout: %r" % (" ".join(args), r))
        if len(args) == 2:
            check(args[0] in r.out, "ragd %s --help does not name the subcommand: %r"
                  % (args[0], r))
    top = t.cli("--help").out
    for sub in SUBCOMMANDS:
        check(sub in top, "ragd --help does not list %r" % sub)


@test
def cli_unknown_flag_exit_2(t):
    data = ("--data-dir", t.path("data"))
    cases = [("--bogus-flag",), ("serve", "--bogus-flag", "--no-ingest", "--listen",
                                          "127.0.0.1:%d" % free_port()) + data,
             ("ingest", "--path", t.tmp, "--bogus-flag") + data,
             ("query", "refund", "--bogus-flag") + data, ("check-config", "--bogus-flag")]
    for args in cases:
        r = t.cli(*args, timeout=30)
        eq(r.rc, 2, "exit status of ragd %s" % " ".join(args))
        check("--bogus-flag" in r.err, "stderr does not name the unknown flag: %r" % r)
    r = t.cli("frobnicate", timeout=30)
    eq(r.rc, 2, "exit status of an unknown subcommand")
    check("frobnicate" in r.err, "stderr does not name the unknown subcommand: %r" % r)
    r = t.cli(timeout=30)
    eq(r.rc, 2, "exit status of ragd without a subcommand")


@test
def cli_missing_flag_value_exit_2(t):
    for args in (("serve", "--listen"), ("query", "refund", "-k"), ("ingest", "--path"),
                 ("ingest",), ("query",)):
        r = t.cli(*args, timeout=30)
        eq(r.rc, 2, "exit status of ragd %s (value missing)" % " ".join(args))
        check(r.err.strip(), "no message on stderr: %r" % r)
    r = t.cli("query", "refund", "-k", "zero", "--data-dir", t.path("data"), timeout=30)
    eq(r.rc, 2, "exit status of ragd query -k zero")


@test
def cli_listen_port_zero_refused(t):
    r = t.cli("serve", "--listen", "127.0.0.1:0", "--data-dir", t.path("data"), "--no-ingest",
              timeout=30)
    eq(r.rc, 2, "exit status of serve --listen 127.0.0.1:0")
    check(re.search(r"port\D{0,20}\b0\b|\b0\b\D{0,20}port", r.err.lower()),
          "message does not mention port 0: %r" % r)


@test
def cli_config_error_names_file_line(t):
    cfg = t.path("bad.ini")
    write(cfg, "[server]\nthreads = 4\nno_such_key = 1\n")
    for args in (("check-config",), ("serve", "--no-ingest", "--listen",
                                          "127.0.0.1:%d" % free_port())):
        cmd = args[0]
        r = t.cli(*args, "--config", cfg, "--data-dir", t.path("data"), timeout=30)
        eq(r.rc, 2, "exit status of %s with an unknown key" % cmd)
        check("%s:3" % cfg in r.err, "%s: message lacks %s:3: %r" % (cmd, cfg, r))
    write(cfg, "# comment\n[server]\nthreads = lots\n")
    r = t.cli("check-config", "--config", cfg, timeout=30)
    eq(r.rc, 2, "exit status of check-config with threads = lots")
    check("%s:3" % cfg in r.err, "message lacks %s:3: %r" % (cfg, r))
    write(cfg, "[server]\nthreads = 4\n[nonsense]\nkey = 1\n")
    r = t.cli("check-config", "--config", cfg, timeout=30)
    eq(r.rc, 2, "exit status of check-config with an unknown section")
    check(re.search(re.escape(cfg) + r":[34]\b", r.err), "message lacks %s:3/4: %r" % (cfg, r))
    r = t.cli("check-config", "--config", t.path("missing.ini"), timeout=30)
    eq(r.rc, 2, "exit status of check-config with a missing config file")
    check("missing.ini" in r.err, "message does not name the missing file: %r" % r)
    r = t.cli("check-config", env={"RAGD_SERVER_THREADS": "many"}, timeout=30)
    eq(r.rc, 2, "exit status with RAGD_SERVER_THREADS=many")
    check("RAGD_SERVER_THREADS" in r.err, "message does not name the variable: %r" % r)


@test
def cli_pgvector_refused(t):
    # an unknown backend names the built-in ones; pgvector without a database URL says so
    for args in (("serve", "--data-dir", t.path("data"), "--no-ingest"), ("check-config",)):
        r = t.cli(*args, env={"VECTOR_BACKEND": "milvus"}, timeout=30)
        eq(r.rc, 2, "exit status of %s with VECTOR_BACKEND=milvus" % args[0])
        check("faiss" in r.err.lower() and "pgvector" in r.err.lower(),
              "%s: message does not list faiss and pgvector: %r" % (args[0], r))
        r = t.cli(*args, env={"VECTOR_BACKEND": "pgvector", "DATABASE_URL": ""}, timeout=30)
        eq(r.rc, 2, "exit status of %s with VECTOR_BACKEND=pgvector, no URL" % args[0])
        check("database_url" in r.err.lower(), "%s: message does not name database_url: %r"
              % (args[0], r))
    r = t.cli("check-config", env={"VECTOR_BACKEND": "faiss"}, timeout=30)
    eq(r.rc, 0, "exit status of check-config with VECTOR_BACKEND=faiss")
    # the password of DATABASE_URL is never printed
    r = t.cli("check-config", env={"VECTOR_BACKEND": "pgvector",
                                   "DATABASE_URL": "postgresql://app:Pw-9d2f@db:5432/x"},
              timeout=30)
    eq(r.rc, 0, "check-config with a pgvector URL")
    check("Pw-9d2f" not in r.out + r.err, "the database password is printed: %r" % r)
    check("postgresql://app:<redacted>@db:5432/x" in r.out, "URL not shown redacted: %r" % r)


@test
def cli_check_config_redacts_secrets(t):
    secret = "sk-test-DoNotPrint-8f3a9c"
    r = t.cli("check-config", "--data-dir", t.path("data"),
              env={"OPENAI_API_KEY": secret, "RAGD_SERVER_THREADS": "7"}, timeout=30)
    eq(r.rc, 0, "exit status of check-config")
    check(secret not in r.out and secret not in r.err, "the API key is printed: %r" % r)
    check("<redacted>" in r.out, "no <redacted> in check-config output: %r" % r)
    for section in ("[server]", "[rag]", "[store]", "[ingest]", "[chunk]", "[embed]",
                    "[retrieve]", "[log]"):
        check(section in r.out, "check-config output lacks %s: %r" % (section, r))
    check(re.search(r"(?m)^\s*threads\s*=\s*7\s*$", r.out), "threads = 7 not shown: %r" % r)
    check(re.search(r"(?m)^\s*data_dir\s*=\s*%s\s*$" % re.escape(t.path("data")), r.out),
          "data_dir from --data-dir not shown: %r" % r)
    check(re.search(r"(?m)^\s*api_key\s*=\s*<redacted>", r.out), "api_key not redacted: %r" % r)
    # a key set in the file is redacted too, and the output is itself a valid config
    cfg = t.path("c.ini")
    write(cfg, "[embed]\napi_key = %s\n" % secret)
    r = t.cli("check-config", "--config", cfg, timeout=30)
    eq(r.rc, 0, "exit status of check-config --config")
    check(secret not in r.out + r.err, "the file's api_key is printed: %r" % r)
    r2 = t.cli("check-config", timeout=30)
    write(t.path("roundtrip.ini"), r2.out)
    r3 = t.cli("check-config", "--config", t.path("roundtrip.ini"), timeout=30)
    eq(r3.rc, 0, "check-config on its own (no secrets) output: %r" % r3)


def ingest_json(t, data, corpus, *extra, env=None):
    r = t.cli("ingest", "--path", corpus, "--data-dir", data, "--json", *extra, env=env)
    eq(r.rc, 0, "exit status of ragd ingest --json: %r" % r)
    return r, r.json()


@test
def cli_ingest_json_then_query_json(t):
    corpus, data = t.path("corpus"), t.path("data")
    n = write_corpus(corpus)
    r, rep = ingest_json(t, data, corpus)
    for key in ("root", "reset", "documents", "chunks", "errors", "duration_ms"):
        check(key in rep, "report lacks %r: %s" % (key, short(rep)))
    eq(rep["root"], os.path.realpath(corpus), "report root")
    eq(rep["reset"], False, "report reset")
    eq(rep["documents"]["added"], n, "documents.added")
    eq(rep["documents"]["seen"], n, "documents.seen")
    eq(rep["documents"]["failed"], 0, "documents.failed")
    check(rep["chunks"]["added"] >= n, "chunks.added %r < files" % rep["chunks"]["added"])
    eq(rep["errors"], [], "errors")
    progress = re.findall(r"(?m)^ingest: (\d+)/(\d+) (\S.*)$", r.err)
    eq(len(progress), n, "number of `ingest: i/n file` progress lines on stderr (%s)"
       % short(r.err))
    eq(progress[-1][:2], (str(n), str(n)), "last progress line counts")
    check(set(p[2] for p in progress) == set(FILES), "progress lines name files: %s"
          % short(progress))

    q = t.cli("query", REFUND_QUESTION, "-k", "3", "--json", "--data-dir", data)
    eq(q.rc, 0, "exit status of ragd query --json: %r" % q)
    ans = q.json()
    check(RETRIEVE_KEYS <= set(ans), "query --json lacks keys %s"
          % (RETRIEVE_KEYS - set(ans)))
    check(1 <= len(ans["results"]) <= 3, "k=3 gave %d results" % len(ans["results"]))
    top = ans["results"][0]
    eq(top["source"], "business/refunds.md", "top source")
    check("Exceptions" in top["heading"], "top heading is %r" % top["heading"])
    eq(ans["query"], REFUND_QUESTION, "query echoed")

    plain = t.cli("query", REFUND_QUESTION, "--data-dir", data)
    eq(plain.rc, 0, "exit status of ragd query (text)")
    check("business/refunds.md" in plain.out, "text output does not show the source: %r"
          % plain)

    again = t.cli("ingest", "--path", corpus, "--data-dir", data, "--json")
    eq(again.rc, 0, "exit status of the second ingest")
    eq(again.json()["documents"]["unchanged"], n, "documents.unchanged on re-ingest")


@test
def cli_query_empty_store_and_bad_k(t):
    data = t.path("data")
    os.makedirs(t.path("empty"))
    r = t.cli("ingest", "--path", t.path("empty"), "--data-dir", data)
    eq(r.rc, 0, "exit status of ingesting an empty dir: %r" % r)
    r = t.cli("query", "anything at all", "--json", "--data-dir", data)
    eq(r.rc, 0, "exit status of query on an empty store: %r" % r)
    ans = r.json()
    eq(ans["results"], [], "results on an empty store")
    eq(ans["low_confidence"], True, "low_confidence on an empty store")
    r = t.cli("query", "x", "-k", "0", "--data-dir", data)
    eq(r.rc, 2, "exit status of query -k 0")
    r = t.cli("query", "x", "-k", "51", "--data-dir", data)
    eq(r.rc, 2, "exit status of query -k 51 (max_k 50)")


@test
def cli_ingest_missing_path(t):
    r = t.cli("ingest", "--path", t.path("nowhere"), "--data-dir", t.path("data"), "--json")
    check(r.rc == 1, "ingest of a missing path: expected exit 1, got %r" % r)
    check("nowhere" in r.err, "message does not name the path: %r" % r)


@test
def cli_dims_mismatch_hints_reset(t):
    corpus, data = t.path("corpus"), t.path("data")
    n = write_corpus(corpus)
    _, rep = ingest_json(t, data, corpus, env={"RAGD_EMBED_DIMS": "256"})
    eq(rep["documents"]["added"], n, "documents.added at 256 dims")
    ok = t.cli("query", REFUND_QUESTION, "--json", "--data-dir", data,
               env={"RAGD_EMBED_DIMS": "256"})
    eq(ok.rc, 0, "query with the same dims: %r" % ok)
    eq(ok.json()["results"][0]["source"], "business/refunds.md", "top source at 256 dims")

    for args in (("query", REFUND_QUESTION, "--data-dir", data),
                 ("ingest", "--path", corpus, "--data-dir", data),
                 ("serve", "--listen", "127.0.0.1:%d" % free_port(),
                  "--data-dir", data, "--no-ingest")):
        r = t.cli(*args, env={"RAGD_EMBED_DIMS": "1024"}, timeout=60)
        check(r.rc != 0, "%s with 1024 dims on a 256-dim store succeeded: %r" % (args[0], r))
        check("--reset" in r.err, "%s: message lacks the --reset hint: %r" % (args[0], r))
        check("256" in r.err and "1024" in r.err, "%s: message does not name both dims: %r"
              % (args[0], r))

    _, rep = ingest_json(t, data, corpus, "--reset", env={"RAGD_EMBED_DIMS": "1024"})
    eq(rep["reset"], True, "report reset after --reset")
    eq(rep["documents"]["added"], n, "documents.added after --reset at 1024 dims")
    q = t.cli("query", REFUND_QUESTION, "--json", "--data-dir", data)
    eq(q.rc, 0, "query after --reset: %r" % q)
    eq(q.json()["results"][0]["source"], "business/refunds.md", "top source after --reset")
    check(is_int(rep["chunks"]["embedded"]), "chunks.embedded not an int")
    h = t.cli("query", "x", "--json", "--data-dir", data, env={"RAGD_EMBED_DIMS": "256"})
    check(h.rc != 0, "the store re-indexed at 1024 still accepts 256: %r" % h)


@test
def cli_ingest_partial_failure_exit_3(t):
    corpus, data = t.path("corpus"), t.path("data")
    n = write_corpus(corpus)
    write(os.path.join(corpus, "broken.md"), b"# Broken\n\nnot UTF-8 \xff\xfe here\n")
    r = t.cli("ingest", "--path", corpus, "--data-dir", data, "--json")
    eq(r.rc, 3, "exit status of an ingest with one unreadable file (documented: 3): %r" % r)
    rep = r.json()
    eq(rep["documents"]["added"], n, "documents.added beside a broken file")
    eq(rep["documents"]["failed"], 1, "documents.failed")
    eq([e["source"] for e in rep["errors"]], ["broken.md"], "errors[].source")
    check("broken.md" in r.err, "stderr does not name the broken file: %r" % r)
