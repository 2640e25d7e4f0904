# SPDX-License-Identifier: MIT
"""
benchlib.py - what the bench drivers share: waiting for a `ragd serve` they started to answer.
"""
import http.client
import time


def wait_ready(proc, port, limit_s, log):
    """Waits until the ragd process proc answers GET /health with 200 on 127.0.0.1:port.
    Raises RuntimeError when it exits first (its output is in log) or limit_s seconds pass."""
    deadline = time.time() + limit_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError("ragd exited: see %s" % log)
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        if time.time() > deadline:
            raise RuntimeError("ragd did not start")
        time.sleep(0.05)
