#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
machine.py - records the machine, the versions of everything measured and the commands of a
benchmark run as JSON on stdout (bench/results/machine.json), for docs/BENCHMARKS.md.
Usage: machine.py [--command CMD]... ; without --command, the commands `make bench` runs.
"""
import json
import os
import platform
import subprocess
import sys
import time


def sh(c):
    try:
        return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def main():
    cmds = [sys.argv[i + 1] for i in range(1, len(sys.argv) - 1) if sys.argv[i] == "--command"]
    if not cmds:
        cmds = ["make bench   # = bash bench/run.sh",
                "python3 bench/bench_core.py --bin build/release/ragd --out "
                "bench/results/core.json --copies 150",
                "python3 bench/bench_scale.py --out bench/results/scale.json",
                "python3 bench/bench_openai.py --bin build/release/ragd --out "
                "bench/results/openai.json",
                "bash bench/corpus.sh && python3 bench/bench_real.py --bin build/release/ragd "
                "--out bench/results/real.json",
                "python3 bench/report.py"]
    dirty = sh("git status --porcelain -uno")
    lock = "bench/peer/package-lock.json"
    usearch = ""
    try:
        with open(lock) as f:
            usearch = json.load(f)["packages"]["node_modules/usearch"]["version"]
    except (OSError, KeyError, ValueError):
        pass
    print(json.dumps({
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "git_commit": sh("git rev-parse --short HEAD") + (" (uncommitted changes)" if dirty else ""),
        "cpu": sh("lscpu | sed -n 's/^Model name: *//p'"),
        "cpus": os.cpu_count(),
        "memory": sh("free -g | awk '/Mem:/{print $2\" GiB\"}'"),
        "kernel": platform.platform(),
        "load_before": " ".join("%.2f" % x for x in os.getloadavg()),
        "compiler": sh("cc --version | head -1"),
        "faiss": "libfaiss-dev " + sh("dpkg-query -W -f '${Version}' libfaiss-dev"),
        "sqlite": sh("pkg-config --modversion sqlite3"),
        "node": sh("node --version"),
        "usearch": usearch,
        "gnuplot": sh("gnuplot --version"),
        "commands": cmds,
    }, indent=1))


if __name__ == "__main__":
    main()
