#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
bench_optlib_ab.py - what a ragd process costs before it does anything, variants side by side
(session 7 part A: the PDF/OCR libraries loaded on first use instead of linked). Each round runs
every variant in turn, on the same core (taskset --cpu):
  - `perf stat -r N -x, -e task-clock BINARY --version`: the mean task-clock (ms) of N runs, i.e.
    the CPU time of exec, the dynamic loader and main() (--version does nothing else);
  - `BINARY serve --no-ingest` on a fresh empty data dir (offline embedder): once /health answers,
    VmRSS / RssAnon / RssFile from /proc/PID/status, the shared objects mapped (/proc/PID/maps)
    and the CPU seconds the start cost (/proc/PID/stat), then SIGTERM.
Reports the medians over the rounds and each variant's ratio to the first, with the load average
at each round. Writes one JSON file. Not a test: nothing is asserted.

Usage: bench_optlib_ab.py --variant NAME=BINARY [--variant ...] [--rounds 5] [--runs 30]
                          [--cpu 1] --out FILE
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile

from benchlib import free_port, proc_cpu_s, proc_status, wait_ready


def version_task_clock_ms(binary, runs, cpu):
    """Returns: the mean task-clock in ms of `runs` runs of `binary --version` on core cpu."""
    p = subprocess.run(["taskset", "-c", str(cpu), "perf", "stat", "-r", str(runs), "-x,",
                        "-e", "task-clock", binary, "--version"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True, text=True)
    for line in p.stderr.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2].startswith("task-clock"):
            return float(fields[0])
    raise RuntimeError("no task-clock in perf's output:\n" + p.stderr)


def status_kib(pid):
    """Returns: VmRSS, RssAnon, RssFile and VmHWM of the process in KiB, keys ending in _kib."""
    keys = ("VmRSS", "RssAnon", "RssFile", "VmHWM")
    return {k + "_kib": v // 1024 for k, v in proc_status(pid, keys).items()}


def shared_objects(pid):
    with open("/proc/%d/maps" % pid) as f:
        return sorted({os.path.basename(line.split()[-1]) for line in f
                       if "/" in line and ".so" in line})


def daemon_start(binary, cpu, tmp):
    """Starts `binary serve` on a fresh empty data dir, pinned to cpu. Returns: its numbers."""
    data = tempfile.mkdtemp(prefix="optlib-ab-", dir=tmp)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGD_")}
    env["RAGD_EMBED_PROVIDER"] = "local"
    log_path = os.path.join(data, "daemon.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["taskset", "-c", str(cpu), binary, "serve", "--listen",
                                 "127.0.0.1:%d" % port, "--data-dir", os.path.join(data, "store"),
                                 "--no-ingest", "--log-level", "warn"],
                                env=env, stdout=log, stderr=log, cwd=data)
        try:
            wait_ready(proc, port, 120, log_path)
            out = status_kib(proc.pid)
            out["start_cpu_s"] = proc_cpu_s(proc.pid)
            sos = shared_objects(proc.pid)
            out["shared_objects"] = len(sos)
            out["poppler_mapped"] = any(s.startswith("libpoppler") for s in sos)
            out["tesseract_mapped"] = any(s.startswith("libtesseract") for s in sos)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    shutil.rmtree(data, ignore_errors=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", action="append", required=True, help="NAME=BINARY")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=30, help="perf stat -r")
    ap.add_argument("--cpu", type=int, default=1)
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    variants = [(n, os.path.abspath(b)) for n, b in (v.split("=", 1) for v in a.variant)]
    rounds = []
    for r in range(a.rounds):
        row = {"round": r + 1, "loadavg": open("/proc/loadavg").read().split()[:3]}
        for name, binary in variants:
            row[name] = {"version_task_clock_ms": version_task_clock_ms(binary, a.runs, a.cpu)}
            row[name].update(daemon_start(binary, a.cpu, a.tmp))
        rounds.append(row)
        print(json.dumps(row), flush=True)
    keys = ("version_task_clock_ms", "VmRSS_kib", "RssAnon_kib", "RssFile_kib", "start_cpu_s",
            "shared_objects")
    medians = {name: {k: statistics.median(row[name][k] for row in rounds) for k in keys}
               for name, _ in variants}
    base = variants[0][0]
    ratios = {name: {k: round(medians[name][k] / medians[base][k], 3) if medians[base][k] else None
                     for k in keys} for name, _ in variants}
    result = {"variants": dict(variants), "cpu": a.cpu, "runs": a.runs, "rounds": rounds,
              "medians": medians, "ratios_to_" + base: ratios}
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps({"medians": medians, "ratios": ratios}, indent=1))


if __name__ == "__main__":
    main()
