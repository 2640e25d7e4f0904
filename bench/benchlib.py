# SPDX-License-Identifier: MIT
"""
benchlib.py - what the bench drivers share: a free loopback port, and waiting for a `ragd serve`
they started to answer.
"""
import http.client
import socket
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
