# SPDX-License-Identifier: MIT
"""
test_faults.py - faults a hostile file system, a failing machine or a shared Redis may bring
(issue 13), against the real binary: files inside a root swapped for symlinks leading outside it
or for FIFOs while ingests run (nothing outside is ever read, nothing blocks), a full disk
(degraded, read-only, recovered without a restart), poisoned Redis values (rejected, counted).
"""
import os
import signal
import subprocess
import threading
import time

from harness import check, eq, faiss_only, test, wait_until, write

SECRET_WORD = "zanzibarquokka"
SWAP_SECONDS = 12.0   # each swap test runs its ingests for this long (bounded, not a timing check)
SWAP_MAX_INGESTS = 400


def swapper(root, outside_file, stop, kinds):
    """Until stop is set, replaces root/swap.md atomically (rename over it) by each of kinds in
    turn: "file" (a regular file inside the root), "link" (a symlink to outside_file), "fifo".
    Returns: the thread (started)."""
    target = os.path.join(root, "swap.md")
    tmp = os.path.join(root, ".swap.tmp")

    def run():
        i = 0
        while not stop.is_set():
            kind = kinds[i % len(kinds)]
            i += 1
            try:
                if os.path.lexists(tmp):
                    os.unlink(tmp)
                if kind == "file":
                    with open(tmp, "w") as f:
                        f.write("# Swap\n\nAn ordinary page about shipping boxes %d.\n" % i)
                elif kind == "link":
                    os.symlink(outside_file, tmp)
                else:
                    os.mkfifo(tmp)
                os.replace(tmp, target)
            except OSError:
                pass
            time.sleep(0.0005)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def ingests_while_swapping(t, kinds):
    """Runs ingests of a root whose swap.md the swapper keeps replacing; every ingest must answer
    (none hangs), the secret outside must never be stored, and the daemon must stop cleanly."""
    root = t.path("root")
    write(os.path.join(root, "keep.md"), "# Keep\n\nParcels leave the warehouse daily.\n")
    write(os.path.join(root, "swap.md"), "# Swap\n\nAn ordinary page.\n")
    secret = t.path("outside", "secret.md")
    write(secret, "# Secret\n\nThe %s vault opens at dawn.\n" % SECRET_WORD)
    d = t.serve(env={"RAGD_INGEST_ALLOWED_ROOTS": root})
    stop = threading.Event()
    th = swapper(root, secret, stop, kinds)
    n = 0
    deadline = time.monotonic() + SWAP_SECONDS
    try:
        while time.monotonic() < deadline and n < SWAP_MAX_INGESTS:
            r = d.call("POST", "/ingest", {"path": root}, timeout=120)
            eq(r.status, 200, "ingest %d during the swaps: %r" % (n, r))
            n += 1
    finally:
        stop.set()
        th.join(10)
    check(n >= 5, "only %d ingests ran" % n)
    # Whatever the last swap left, a clean tree and one more ingest must leave no trace of it.
    for name in ("swap.md", ".swap.tmp"):
        p = os.path.join(root, name)
        if os.path.lexists(p):
            os.unlink(p)
    eq(d.call("POST", "/ingest", {"path": root}, timeout=120).status, 200, "clean ingest")
    for mode in ("keyword", "vector", "hybrid"):
        ans = d.retrieve({"query": "%s vault dawn" % SECRET_WORD, "k": 10, "mode": mode})
        for res in ans["results"]:
            check(SECRET_WORD not in res["text"],
                  "a file outside the root was read and is still served (%s, after %d ingests): %s"
                  % (mode, n, res["source"]))
    eq(d.health()["store"]["documents"], 1, "documents after the clean ingest (keep.md)")
    eq(d.stop(signal.SIGTERM), 0, "exit status after the swaps")
    check(os.path.isfile(os.path.join(d.data_dir, "index.faiss")), "index saved at exit")
    return n


@test
def crawl_symlink_swaps_never_read_outside_root(t):
    ingests_while_swapping(t, ("file", "link"))


@test
def crawl_fifo_swaps_never_block(t):
    ingests_while_swapping(t, ("file", "fifo", "link"))


@test
def ingest_root_swapped_for_a_link_never_read(t):
    """The ingest path itself (a directory inside the allowed root) swapped for a symlink to a
    directory outside between the allowed-roots check and the crawl: refused (403) or ingested
    from the real directory, never from outside; never a 5xx."""
    root = t.path("root")
    sub = os.path.join(root, "sub")
    hold = os.path.join(root, ".hold")  # where the real directory waits while sub is a link
    write(os.path.join(sub, "keep.md"), "# Keep\n\nParcels leave the warehouse daily.\n")
    outside = t.path("outside")
    write(os.path.join(outside, "secret.md"), "# Secret\n\nThe %s vault.\n" % SECRET_WORD)
    d = t.serve(env={"RAGD_INGEST_ALLOWED_ROOTS": root})
    stop = threading.Event()
    tmp = os.path.join(root, ".sub.tmp")

    def run():
        while not stop.is_set():
            try:  # the directory out, a link to outside in; then back
                os.rename(sub, hold)
                os.symlink(outside, tmp)
                os.replace(tmp, sub)
                time.sleep(0.0005)
                os.unlink(sub)
                os.rename(hold, sub)
            except OSError:
                pass
            time.sleep(0.0005)
        if os.path.islink(sub):
            os.unlink(sub)
        if os.path.isdir(hold):
            os.rename(hold, sub)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    seen = {}
    deadline = time.monotonic() + SWAP_SECONDS
    n = 0
    try:
        while time.monotonic() < deadline and n < SWAP_MAX_INGESTS:
            r = d.call("POST", "/ingest", {"path": sub}, timeout=120)
            seen[r.status] = seen.get(r.status, 0) + 1
            check(r.status in (200, 403, 404), "ingest %d: %r" % (n, r))
            n += 1
    finally:
        stop.set()
        th.join(10)
    for mode in ("keyword", "vector"):
        for res in d.retrieve({"query": "%s vault" % SECRET_WORD, "k": 10, "mode": mode})[
                "results"]:
            check(SECRET_WORD not in res["text"],
                  "outside read through the swapped ingest root (%s): %r" % (seen, res["source"]))
    # the swapper leaves the real directory in place: it ingests as usual
    eq(d.call("POST", "/ingest", {"path": sub}, timeout=120).status, 200, "ingest after the swaps")
    eq(d.health()["store"]["documents"], 1, "documents after the swaps (keep.md)")


# ---- full disk -----------------------------------------------------------------------------
class TmpfsDisk:
    """A 2 MiB tmpfs as the data dir's file system (needs root and mount rights)."""
    kind = "tmpfs"

    def __init__(self, t):
        self.mnt = t.path("disk")
        os.makedirs(self.mnt, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", self.mnt],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if r.returncode != 0:
            raise OSError("cannot mount a tmpfs")
        self.data = os.path.join(self.mnt, "data")
        self.filler = os.path.join(self.mnt, "filler")
        self.env = {}

    def fill(self):
        """Appends to the filler file until the file system refuses (ENOSPC)."""
        block = b"\0" * 4096
        with open(self.filler, "ab", buffering=0) as f:
            while True:
                try:
                    f.write(block)
                except OSError:
                    break
        check(os.statvfs(self.mnt).f_bavail == 0, "tmpfs not full")

    def free(self):
        os.unlink(self.filler)

    def close(self):
        subprocess.run(["umount", "-l", self.mnt], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


class InjectedDisk:
    """Where no tmpfs can be mounted: ragd's test-only RAGD_TEST_WRITE_FAILURE hook fails every
    write of the engine while a flag file exists (docs/OPERATIONS.md, "Full disk")."""
    kind = "injected"

    def __init__(self, t):
        self.data = t.path("data")
        self.flag = t.path("disk-full.flag")
        self.env = {"RAGD_TEST_WRITE_FAILURE": self.flag}

    def fill(self):
        write(self.flag, "all\n")

    def free(self):
        os.unlink(self.flag)

    def close(self):
        pass


def make_disk(t):
    """A tmpfs where one can be mounted, else the injected failure; RAGD_IT_FULL_DISK=injected
    forces the latter (to test the fallback itself)."""
    try:
        if os.environ.get("RAGD_IT_FULL_DISK") == "injected":
            raise OSError("forced")
        return TmpfsDisk(t)
    except OSError:
        print("# full disk: no tmpfs could be mounted; using the injected write failure")
        return InjectedDisk(t)


def health_of(d):
    r = d.call("GET", "/health")
    eq(r.status, 200, "GET /health status")
    return r.json


@test
@faiss_only  # the data dir's file system is the faiss backend's; pgvector writes to Postgres
def full_disk_degrades_serves_and_recovers(t):
    corpus = t.path("corpus")
    for i in range(8):
        write(os.path.join(corpus, "p%d.md" % i),
              "# Page %d\n\nParcel %d leaves the warehouse on day %d.\n\n## Refunds\n\n"
              "Refunds for order %d take five days.\n" % (i, i, i, i))
    disk = make_disk(t)
    daemons = []
    try:
        env = dict(disk.env, RAGD_INGEST_ALLOWED_ROOTS=t.tmp)
        d = t.serve(data_dir=disk.data, env=env)
        daemons.append(d)
        d.ingest(corpus)
        eq(health_of(d)["status"], "ok", "status before the disk fills")

        disk.fill()
        docs = health_of(d)["store"]["documents"]
        r = d.call("POST", "/documents", {"id": "late", "text": "A parcel pushed too late."})
        check(r.status >= 500 and r.json["error"]["code"], "push on a full disk: %r" % r)
        h = health_of(d)
        eq(h["status"], "degraded", "status while writes fail")
        eq(h["store"]["writable"], False, "store.writable while writes fail")
        check(h["store"]["write_error"], "store.write_error while writes fail")
        check(any("writes are failing" in x for x in h["reasons"]), "reasons: %r" % h["reasons"])
        eq(h["store"]["documents"], docs, "documents after the failed push")
        r = d.call("POST", "/ingest", {"path": corpus, "reset": True}, timeout=120)
        check(r.status >= 500, "an ingest with reset on a full disk: %r" % r)
        eq(health_of(d)["store"]["documents"], docs, "documents after the refused ingest")
        check(d.retrieve({"query": "refunds order 3", "k": 2})["results"],
              "no results while the disk is full")
        eq(d.stop(), 0, "exit status on a full disk")

        # A start on the full disk whose index must be rebuilt (and cannot be saved): it serves.
        for name in ("index.faiss", "index.faiss.meta"):
            if os.path.exists(os.path.join(disk.data, name)):
                os.unlink(os.path.join(disk.data, name))
        disk.fill()
        d = t.serve(data_dir=disk.data, env=env)
        daemons.append(d)
        h = health_of(d)
        eq(h["status"], "degraded", "status after a start on a full disk")
        eq(h["store"]["writable"], False, "writable after a start on a full disk")
        eq(h["store"]["index_vectors"], h["store"]["chunks"], "index rebuilt in memory")
        ans = d.retrieve({"query": "refunds order 3", "k": 2})
        check(ans["results"] and "order 3" in ans["results"][0]["text"],
              "retrieval from memory: %r" % ans["results"][:1])
        r = d.call("POST", "/documents", {"id": "late", "text": "A parcel pushed too late."})
        eq(r.status, 503, "push while writes are suspended: %r" % r)
        eq(r.json["error"]["code"], "unavailable", "error code while writes are suspended")

        # Space returns: ragd notices by itself (no restart, no request but /health).
        disk.free()
        wait_until(lambda: health_of(d)["store"]["writable"], 60, "writes to resume")
        h = health_of(d)
        eq(h["status"], "ok", "status after recovery: %r" % h["reasons"])
        check(os.path.isfile(os.path.join(disk.data, "index.faiss")), "index saved on recovery")
        wal = os.path.join(disk.data, "ragd.sqlite3-wal")
        eq(os.path.getsize(wal) if os.path.exists(wal) else 0, 0, "WAL truncated on recovery")
        r = d.call("POST", "/documents", {"id": "late", "text": "A parcel pushed too late."})
        eq(r.status, 200, "push after recovery: %r" % r)
        eq(health_of(d)["store"]["documents"], docs + 1, "documents after recovery")
        eq(d.stop(), 0, "exit status after recovery")
    finally:
        for d in daemons:
            d.stop()
        disk.close()


@test
def push_applied_when_only_the_flush_fails(t):
    """A push or delete whose commit succeeded is applied even if the flush to disk after it fails:
    answered as applied (not as an error), the failure reported by /health until a flush works.
    The flush failure is injected (RAGD_TEST_WRITE_FAILURE=flag, "flush"): no file system fails
    only fsyncs on demand."""
    flag = t.path("flush.flag")
    d = t.serve(env={"RAGD_TEST_WRITE_FAILURE": flag})
    write(flag, "flush\n")
    r = d.call("POST", "/documents", {"id": "faq-1", "text": "Gift cards never expire."})
    eq(r.status, 200, "push whose flush fails: %r" % r)
    eq(r.json["counts"]["added"], 1, "push counts")
    eq(d.call("GET", "/documents/faq-1").status, 200, "the pushed document is stored")
    h = health_of(d)
    eq(h["status"], "degraded", "status after the failed flush")
    check("flush" in h["store"]["write_error"], "write_error: %r" % h["store"]["write_error"])
    ans = d.retrieve({"query": "do gift cards expire", "k": 1})
    check(ans["results"] and "Gift cards" in ans["results"][0]["text"], "retrieval: %r" % ans)
    os.unlink(flag)
    wait_until(lambda: health_of(d)["store"]["writable"], 60, "writes to resume")
    write(flag, "flush\n")
    r = d.call("DELETE", "/documents/faq-1")
    eq(r.status, 200, "delete whose flush fails: %r" % r)
    eq(d.call("GET", "/documents/faq-1").status, 404, "the deleted document is gone")
    os.unlink(flag)
    wait_until(lambda: health_of(d)["status"] == "ok", 60, "status ok after the flush works")
    eq(d.stop(), 0, "exit status")


@test
def serve_refuses_a_port_in_use(t):
    """A second daemon on a port already served must fail to start ("cannot listen"), not bind
    beside the first (SO_REUSEPORT) and take half of its connections; the first one keeps
    answering. (Concurrent test suites on one machine hit this: a request reached another
    suite's daemon.)"""
    d = t.serve()
    r = t.cli("serve", "--no-ingest", "--listen", "127.0.0.1:%d" % d.port, "--data-dir",
              t.path("data2"), timeout=60)
    check(r.rc != 0, "a second daemon started on port %d: %r" % (d.port, r))
    check("cannot listen" in r.err, "the reason: %r" % r.err[-400:])
    eq(health_of(d)["status"], "ok", "the first daemon after the refused second one")
