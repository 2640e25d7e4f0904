# SPDX-License-Identifier: MIT
"""
benchlib.py - what the bench drivers share: a free loopback port, waiting for a `ragd serve`
they started to answer, a process's memory and CPU time from /proc, and the c8/c1 ratio measured
in interleaved rounds.
"""
import http.client
import os
import socket
import statistics
import time


def free_port():
    """Returns: a TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_ready(proc, port, limit_s, log, poll_s=0.05):
    """Waits until the ragd process proc answers GET /health with 200 on 127.0.0.1:port, asking
    every poll_s seconds. Raises RuntimeError when it exits first (its output is in log) or
    limit_s seconds pass."""
    deadline = time.time() + limit_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError("ragd exited: see %s" % log)
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/health")
            r = c.getresponse()
            r.read()
            if r.status == 200:
                return
        except OSError:
            pass
        if time.time() > deadline:
            raise RuntimeError("ragd did not start")
        time.sleep(poll_s)


def proc_status(pid, keys=("VmHWM", "VmRSS")):
    """Returns: {key: bytes} for the lines of /proc/PID/status named in keys (VmHWM, VmRSS,
    RssAnon, RssFile...; the file says kB), {} when the process is gone."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                key, _, val = line.partition(":")
                if key in keys:
                    out[key] = int(val.split()[0]) * 1024
    except OSError:
        pass
    return out


def proc_cpu_s(pid):
    """Returns: the process's user + system CPU seconds so far (/proc/PID/stat), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def scaling_rounds(run, c1_rps, rounds, seconds, min_requests):
    """Concurrency 8 against concurrency 1, side by side (the target "both cores: c8 >= 1.7x
    c1"): rounds pairs of runs, each about seconds long (c1 sized from c1_rps, the requests/s of
    an earlier c1 run; c8 given twice as many requests), the order alternating per round (c1
    first, then c8 first) so that a change of load during the run weighs on both sides alike. A
    ratio of two single runs minutes apart on a shared machine swings by 15%; the median of the
    rounds' ratios is the figure. run(concurrency, requests) drives the daemon and returns
    bench_http's record. Returns: a new dict (the rounds, and the medians)."""
    n1 = int(max(min_requests, c1_rps * seconds))
    out = []
    t0 = time.time()
    for i in range(rounds):
        rnd = {"order": "c1,c8" if i % 2 == 0 else "c8,c1",
               "loadavg": " ".join("%.2f" % x for x in os.getloadavg())}
        for c in ((1, 8) if i % 2 == 0 else (8, 1)):
            h = run(c, n1 if c == 1 else 2 * n1)
            rnd["c%d" % c] = {x: h[x] for x in ("p50_ms", "p95_ms", "p99_ms", "rps")}
        rnd["c8_over_c1"] = round(rnd["c8"]["rps"] / rnd["c1"]["rps"], 3) \
            if rnd["c1"]["rps"] else 0
        out.append(rnd)
    return {"rounds": out, "requests_c1": n1, "requests_c8": 2 * n1,
            "median_c8_over_c1": statistics.median(r["c8_over_c1"] for r in out) if out else None,
            "median_c1_rps": statistics.median(r["c1"]["rps"] for r in out) if out else None,
            "median_c8_rps": statistics.median(r["c8"]["rps"] for r in out) if out else None,
            "seconds": round(time.time() - t0, 1)}
