#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
run.py - ragd's integration suite runner. Imports every tests/integration/test_*.py, runs each
registered test against the real binary (fresh temp dir per test or per shared fixture), prints
`ok - name` or `FAIL - name: reason` (details indented below) and ends with
`integration: N passed, N failed`; exit status 1 when anything failed.

Usage: run.py [--bin PATH] [-k SUBSTRING]... [--list] [-v]
  --bin   the ragd binary (default: $RAGD_BIN, else build/asan/ragd from the repo root)
  -k      run only tests whose name contains SUBSTRING (may repeat), with the tests of the
          same shared fixture defined before them (they build its state)
  -v      print each test's duration on stderr
Set RAGD_IT_KEEP=1 to keep the temp dirs of failed tests.
"""
import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import harness  # noqa: E402


# The modules a pgvector run (RAGD_IT_BACKEND=pgvector) covers; see main().
PG_MODULES = {"test_ingest", "test_retrieve", "test_documents", "test_collections",
              "test_daemon", "test_ranking", "test_pgvector"}


def load_modules():
    for fname in sorted(os.listdir(HERE)):
        if fname.startswith("test_") and fname.endswith(".py"):
            importlib.import_module(fname[:-3])


def indent(text):
    return "\n".join("    " + l if not l.startswith("    ") else l
                     for l in text.rstrip().splitlines())


class Runner:
    def __init__(self, verbose):
        self.passed = 0
        self.failed = 0
        self.failures = []
        self.verbose = verbose

    def report(self, name, reason, details=""):
        if reason is None:
            self.passed += 1
            print("ok - %s" % name, flush=True)
        else:
            self.failed += 1
            first, _, rest = str(reason).partition("\n")
            self.failures.append(name)
            print("FAIL - %s: %s" % (name, first), flush=True)
            more = (rest + "\n" + details).strip()
            if more:
                print(indent(more), flush=True)

    def run_one(self, name, fn, args, ctx):
        t0 = time.monotonic()
        reason = None
        try:
            fn(ctx, *args)
        except harness.TestFailure as e:
            reason = str(e)
        except Exception:  # noqa: BLE001 - a test bug or an unexpected reply is a failure
            reason = "unexpected exception:\n" + traceback.format_exc(limit=6)
        finally:
            problems = ctx.cleanup()
        if reason is None and problems:
            reason = problems[0]
        details = ""
        if reason is not None:
            details = ctx.daemon_logs()
            for p in problems[1:] if problems and reason == problems[0] else problems:
                details += "\n" + p
        if self.verbose:
            print("  %.1fs %s" % (time.monotonic() - t0, name), file=sys.stderr, flush=True)
        return reason, details


def main():
    ap = argparse.ArgumentParser(description="ragd integration tests")
    ap.add_argument("--bin", default=os.environ.get("RAGD_BIN") or
                    os.path.join(REPO, "build", "asan", "ragd"))
    ap.add_argument("-k", action="append", default=[])
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-v", action="store_true")
    opts = ap.parse_args()

    load_modules()
    selected = [t for t in harness.TESTS if not opts.k or any(k in t[0] for k in opts.k)]
    selected = with_fixture_predecessors(selected)
    if harness.BACKEND == "pgvector":
        # The suites that run on both backends (one parametrised suite, not a copy): ingest,
        # retrieval, documents and filters, jobs, collections, crash recovery, the eval
        # baseline, and the pgvector-only tests; less any test marked @faiss_only.
        selected = [t for t in selected if t[3] in PG_MODULES and
                    not getattr(t[1], "faiss_only", False)]
    elif harness.BACKEND != "faiss":
        print("integration: unknown RAGD_IT_BACKEND %r" % harness.BACKEND)
        return 1
    else:
        selected = [t for t in selected if not getattr(t[1], "pgvector_only", False)]
    if opts.list:
        for name, _, fx, mod in selected:
            print("%s.%s%s" % (mod, name, " [%s]" % fx if fx else ""))
        return 0

    runner = Runner(opts.v)
    harness.BIN = os.path.abspath(opts.bin)
    if not (os.path.isfile(harness.BIN) and os.access(harness.BIN, os.X_OK)):
        runner.report("setup", "ragd binary not found or not executable: %s" % harness.BIN)
        print("integration: %d passed, %d failed" % (runner.passed, runner.failed))
        return 1

    # Run a private copy, so a rebuild of the binary during the run cannot mix two versions.
    snapshot_dir = tempfile.mkdtemp(prefix="ragd-it-bin-")
    try:
        harness.BIN = os.path.join(snapshot_dir, "ragd")
        shutil.copy2(opts.bin, harness.BIN)
        run_all(runner, selected)
    finally:
        shutil.rmtree(snapshot_dir, ignore_errors=True)

    if runner.failures:
        print("# failed: %s" % ", ".join(runner.failures))
    print("integration: %d passed, %d failed" % (runner.passed, runner.failed))
    return 1 if runner.failed else 0


def with_fixture_predecessors(selected):
    """Tests of a shared fixture run in definition order and may build on what the earlier ones
    did (the first one ingests, the next ones query): a test selected with -k brings the tests of
    its fixture defined before it, so that it runs as it does in the whole suite."""
    keep = set(id(t) for t in selected)
    for t in selected:
        if t[2] is None:
            continue
        for u in harness.TESTS:
            if u is t:
                break
            if u[2] == t[2]:
                keep.add(id(u))
    return [t for t in harness.TESTS if id(t) in keep]


def run_all(runner, selected):
    fx_name, fx_ctx, fx_value, fx_error = None, None, None, None

    def close_fixture():
        if fx_ctx is None:
            return
        problems = fx_ctx.cleanup()
        label = "fixture_%s_clean_shutdown" % fx_name
        if problems:
            runner.report(label, problems[0], fx_ctx.daemon_logs())
        else:
            runner.report(label, None)

    try:
        for name, fn, fx, _mod in selected:
            if fx != fx_name:
                close_fixture()
                fx_name, fx_ctx, fx_value, fx_error = fx, None, None, None
                if fx is not None:
                    fx_ctx = harness.Ctx("fx-" + fx)
                    try:
                        fx_value = harness.FIXTURES[fx](fx_ctx)
                    except harness.TestFailure as e:
                        fx_error = str(e)
                    except Exception:  # noqa: BLE001
                        fx_error = traceback.format_exc(limit=6)
            if fx is not None and fx_error is not None:
                runner.report(name, "fixture %s setup failed: %s" % (fx, fx_error),
                              fx_ctx.daemon_logs())
                continue
            ctx = harness.Ctx(name)
            args = (fx_value,) if fx is not None else ()
            reason, details = runner.run_one(name, fn, args, ctx)
            if reason is not None and fx_ctx is not None:
                details = (details + "\n" + fx_ctx.daemon_logs()).strip()
            runner.report(name, reason, details)
    finally:
        close_fixture()


if __name__ == "__main__":
    sys.exit(main())
