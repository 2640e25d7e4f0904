# SPDX-License-Identifier: MIT
"""
harness.py - the integration suite's machinery: a registry of test functions (with optional shared
fixtures), a per-test context that owns a temp dir and every process it starts, a `ragd serve`
wrapper (free loopback port, /health wait, SIGTERM then SIGKILL, sanitizer scan of its stderr),
a `ragd` CLI runner, a small HTTP client and the assertion helpers. Standard library only.

Every wait is bounded; every process a test starts is stopped in the test's cleanup, even when the
test fails.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

# ---- configuration set by run.py -----------------------------------------------------------
BIN = None  # absolute path of the ragd binary under test

HEALTH_WAIT_S = 30.0  # the ASan build starts slowly
HEALTH_POLL_S = 0.05
STOP_GRACE_S = 10.0
CLI_TIMEOUT_S = 120.0
HTTP_TIMEOUT_S = 60.0

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
DROPPED_ENV = ("RAG_ENABLED", "VECTOR_BACKEND", "OPENAI_API_KEY", "OPENAI_BASE_URL", "REDIS_URL",
               "DATABASE_URL", "USE_FINETUNED_MODEL")

# The store backend every daemon and CLI of the run uses (run.py: RAGD_IT_BACKEND). With
# pgvector, each data dir of a test maps to a Postgres schema of its own (pg_schema_for), so tests
# stay isolated on one database; a test may name a schema itself to share one store.
BACKEND = os.environ.get("RAGD_IT_BACKEND", "faiss")
DATABASE_URL = os.environ.get("RAGD_IT_DATABASE_URL", "")


def pg_schema_for(data_dir):
    """The Postgres schema standing for data_dir in a pgvector run."""
    import hashlib
    return "it_" + hashlib.sha256(os.path.abspath(data_dir).encode()).hexdigest()[:16]


def backend_env(data_dir, env=None):
    """The environment a ragd process gets for data_dir: the run's backend, then env on top."""
    out = {}
    if BACKEND == "pgvector":
        out = {"VECTOR_BACKEND": "pgvector", "DATABASE_URL": DATABASE_URL,
               "RAGD_STORE_PG_SCHEMA": pg_schema_for(data_dir)}
    out.update(env or {})
    return out


def faiss_only(fn):
    """Marks a test that checks the faiss backend's own files: a pgvector run skips it."""
    fn.faiss_only = True
    return fn


class TestFailure(Exception):
    """An assertion in a test did not hold."""


# ---- registry ------------------------------------------------------------------------------
TESTS = []  # (name, fn, fixture_name or None, module name)
FIXTURES = {}  # name -> setup function (ctx) -> value


def test(fn):
    """Registers fn(t) as a test; t is a fresh Ctx."""
    TESTS.append((fn.__name__, fn, None, fn.__module__))
    return fn


def shared(fixture_name):
    """Registers fn(t, fx) as a test that uses the shared fixture `fixture_name`; tests of one
    fixture must be defined one after another (they run in definition order)."""
    def wrap(fn):
        TESTS.append((fn.__name__, fn, fixture_name, fn.__module__))
        return fn
    return wrap


def fixture(name):
    """Registers setup(ctx) -> value as a shared fixture. The ctx lives (with its temp dir and
    daemons) until the last test using the fixture has run."""
    def wrap(fn):
        FIXTURES[name] = fn
        return fn
    return wrap


# ---- assertions ----------------------------------------------------------------------------
def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def eq(actual, expected, what):
    if actual != expected:
        raise TestFailure("%s: expected %r, got %r" % (what, expected, actual))


def short(v, n=300):
    s = v if isinstance(v, str) else repr(v)
    return s if len(s) <= n else s[:n] + "...(%d chars)" % len(s)


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ---- environment and ports -----------------------------------------------------------------
def child_env(extra=None):
    """os.environ minus RAGD_* and the roadmap flags, plus ASan options and `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RAGD_") and k not in DROPPED_ENV}
    env["ASAN_OPTIONS"] = "detect_leaks=1"
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def sanitizer_findings(text):
    """Returns the first sanitizer report line in text, or None."""
    for line in text.splitlines():
        for m in SANITIZER_MARKERS:
            if m in line:
                return line.strip()
    return None


def tail(text, lines=40):
    parts = text.splitlines()
    return "\n".join("    | " + l for l in parts[-lines:])


# ---- HTTP ----------------------------------------------------------------------------------
class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # dict, lower-case names
        self.body = body
        self._json = None
        self._parsed = False

    @property
    def json(self):
        if not self._parsed:
            try:
                self._json = json.loads(self.body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                raise TestFailure("response %d is not JSON (%s): %s"
                                  % (self.status, e, short(self.body)))
            self._parsed = True
        return self._json

    def __repr__(self):
        return "HTTP %d %s" % (self.status, short(self.body.decode("utf-8", "replace")))


def http_call(port, method, path, body=None, raw=None, headers=None, timeout=HTTP_TIMEOUT_S):
    """One request on a fresh connection. body: a JSON-able value; raw: bytes sent as is."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    hdrs = {"Connection": "close"}
    if data is not None:
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        payload = r.read()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, payload)
    finally:
        conn.close()


class FakeServer:
    """A fake upstream (tests/fake_*.py: it prints `READY <port>` once listening) on a free
    loopback port, stopped by the test's cleanup. `prefix` is what base_url adds to the
    address (e.g. "/v1")."""
    name = "fake"
    prefix = ""

    def __init__(self, ctx, script, *args):
        import sys
        self.proc = subprocess.Popen([sys.executable, script, "--host", "127.0.0.1", "--port", "0"]
                                     + list(args), stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        ctx.children.append(self.proc)
        line = self.proc.stdout.readline().decode().split()
        check(len(line) == 2 and line[0] == "READY",
              "%s did not print READY: %r" % (os.path.basename(script), line))
        self.port = int(line[1])
        self.base_url = "http://127.0.0.1:%d%s" % (self.port, self.prefix)

    def call(self, method, path, body=None):
        r = http_call(self.port, method, path, body)
        check(r.status == 200, "fake %s %s: %r" % (method, path, r))
        return r.json

    def script(self, *replies):
        self.call("POST", "/_script", {"replies": list(replies)})


def http_raw(port, request_head, body, timeout=HTTP_TIMEOUT_S):
    """Sends a raw request (head + body) on a socket, tolerating the server closing early (as it
    may for a too-large body), and parses the response. Returns Resp."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(request_head)
            view = memoryview(body)
            for off in range(0, len(body), 65536):
                s.sendall(view[off:off + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
        data = b"".join(chunks)
    finally:
        s.close()
    if not data:
        raise TestFailure("no HTTP response (connection closed without a reply)")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    if not m:
        raise TestFailure("bad status line %r" % lines[0])
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if "content-length" in hdrs:
        rest = rest[:int(hdrs["content-length"])]
    elif hdrs.get("transfer-encoding", "").lower() == "chunked":
        out, buf = b"", rest
        while buf:
            size_line, _, buf = buf.partition(b"\r\n")
            n = int(size_line.split(b";")[0], 16)
            if n == 0:
                break
            out += buf[:n]
            buf = buf[n + 2:]
        rest = out
    return Resp(int(m.group(1)), hdrs, rest)


def expect_error(resp, status, code, field=None, what=""):
    """Checks an error answer: status, {"error": {"code", "message"}}, message naming field."""
    label = (what + ": ") if what else ""
    check(resp.status == status, "%sexpected HTTP %d, got %r" % (label, status, resp))
    j = resp.json
    check(isinstance(j, dict) and isinstance(j.get("error"), dict),
          "%serror body is not {\"error\": {...}}: %s" % (label, short(j)))
    e = j["error"]
    check(isinstance(e.get("code"), str) and isinstance(e.get("message"), str),
          "%serror lacks string code/message: %s" % (label, short(j)))
    check(e["code"] == code, "%sexpected code %r, got %r (%s)" % (label, code, e["code"],
                                                               e["message"]))
    check(e["message"].strip() != "", "%sempty error message" % label)
    if field is not None:
        check(field in e["message"], "%smessage does not name %r: %r" % (label, field,
                                                                        e["message"]))
    ctype = resp.headers.get("content-type", "")
    check("application/json" in ctype, "%serror Content-Type is %r" % (label, ctype))
    return e


# ---- processes -----------------------------------------------------------------------------
class CliResult:
    def __init__(self, args, rc, out, err):
        self.args, self.rc, self.out, self.err = args, rc, out, err

    def __repr__(self):
        return "`ragd %s` exit %s\n  stdout:\n%s\n  stderr:\n%s" % (
            " ".join(self.args), self.rc, tail(self.out, 15), tail(self.err, 15))

    def json(self):
        try:
            return json.loads(self.out)
        except ValueError as e:
            raise TestFailure("stdout is not JSON (%s): %r" % (e, self))


class Daemon:
    """`ragd serve` on a free loopback port; started by Ctx.serve()."""

    def __init__(self, ctx, data_dir, config=None, env=None, args=(), no_ingest=True, wait=True):
        self.ctx = ctx
        self.port = free_port()
        self.data_dir = data_dir
        ctx.daemon_count += 1
        self.stderr_path = os.path.join(ctx.tmp, "daemon%d.stderr" % ctx.daemon_count)
        # POST /ingest reads only inside allowed roots: the test's temp dir unless a test says
        env = backend_env(data_dir, env)
        env.setdefault("RAGD_INGEST_ALLOWED_ROOTS", ctx.tmp)
        cmd = [BIN, "serve", "--listen", "127.0.0.1:%d" % self.port, "--data-dir", data_dir]
        if config:
            cmd += ["--config", config]
        if no_ingest:
            cmd.append("--no-ingest")
        cmd += list(args)
        self.cmd = cmd
        self._err_file = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._err_file,
                                     stderr=self._err_file, env=child_env(env), cwd=ctx.tmp,
                                     start_new_session=True)
        self.exit_code = None
        ctx.daemons.append(self)
        # free_port() only found a port free a moment ago: another process (another test suite
        # on the machine) may take it first. ragd then fails with "cannot listen"; start again
        # on another port (twice at most).
        for _ in range(2):
            if not wait or not self._lost_port():
                break
            self._err_file.close()
            self.port = free_port()
            cmd[cmd.index("--listen") + 1] = "127.0.0.1:%d" % self.port
            self._err_file = open(self.stderr_path, "wb")
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._err_file,
                                         stderr=self._err_file, env=child_env(env),
                                         cwd=ctx.tmp, start_new_session=True)
        if wait:
            self.wait_ready()

    def _lost_port(self):
        """Waits until this daemon listens (True: it exited because the port was taken)."""
        try:
            self.wait_ready()
            return False
        except TestFailure:
            return self.proc.poll() is not None and "cannot listen" in self.stderr_text()

    def _listening_here(self):
        """True when this daemon says it listens on self.port: in its log line ("listening on
        http://127.0.0.1:PORT ") or, at a quieter log level, in the data dir's lock (pid and
        listen address, written once it listens). So the /health that answered came from this
        daemon, not from another process that took the port in the meantime."""
        if ("listening on http://127.0.0.1:%d " % self.port) in self.stderr_text():
            return True
        try:
            with open(os.path.join(self.ctx.tmp, self.data_dir, "ragd.lock")) as f:
                text = f.read()
        except OSError:
            return False
        return ("pid=%d\n" % self.proc.pid) in text and (":%d\n" % self.port) in text

    @property
    def pid(self):
        return self.proc.pid

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_ready(self):
        deadline = time.monotonic() + HEALTH_WAIT_S
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.exit_code = rc
                raise TestFailure("daemon exited with %d before answering /health\n%s"
                                  % (rc, tail(self.stderr_text())))
            try:
                http_call(self.port, "GET", "/health", timeout=2)
                if self._listening_here():
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(HEALTH_POLL_S)
        raise TestFailure("daemon did not answer /health within %.0f s\n%s"
                          % (HEALTH_WAIT_S, tail(self.stderr_text())))

    def call(self, method, path, body=None, **kw):
        return http_call(self.port, method, path, body, **kw)

    def health(self):
        r = self.call("GET", "/health")
        check(r.status == 200, "GET /health: %r" % r)
        return r.json

    def retrieve(self, body, expect=200):
        r = self.call("POST", "/retrieve", body)
        check(r.status == expect, "POST /retrieve %s: %r" % (short(body, 120), r))
        return r.json

    def ingest(self, path, reset=None, expect=200):
        body = {"path": path}
        if reset is not None:
            body["reset"] = reset
        r = self.call("POST", "/ingest", body, timeout=300)
        check(r.status == expect, "POST /ingest %s: %r" % (short(body, 200), r))
        return r.json

    def running(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        """Stops the daemon (sig, then SIGKILL after the grace period). Returns its exit code."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.exit_code = self.proc.returncode
        if not self._err_file.closed:
            self._err_file.close()
        return self.exit_code


class Ctx:
    """Per-test (or per-fixture) context: a fresh temp dir and the processes started in it."""

    def __init__(self, name):
        base = os.environ.get("TMPDIR") or "/tmp"
        self.tmp = tempfile.mkdtemp(prefix="ragd-it-%s-" % name[:40], dir=base)
        self.name = name
        self.daemons = []
        self.children = []  # other Popen objects to kill
        self.daemon_count = 0
        self.cli_count = 0
        self.notes = []

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def serve(self, data_dir=None, **kw):
        return Daemon(self, data_dir or self.path("data"), **kw)

    def cli(self, *args, env=None, timeout=CLI_TIMEOUT_S, cwd=None):
        """Runs `ragd args...` to completion. A sanitizer report on its stderr fails the test."""
        args = [str(a) for a in args]
        env = backend_env(self.data_dir_of(args, cwd), env)
        try:
            p = subprocess.run([BIN] + args, stdin=subprocess.DEVNULL, capture_output=True,
                               env=child_env(env), cwd=cwd or self.tmp, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise TestFailure("`ragd %s` did not finish within %.0f s; stderr:\n%s"
                              % (" ".join(args), timeout,
                                 tail((e.stderr or b"").decode("utf-8", "replace"))))
        res = CliResult(args, p.returncode, p.stdout.decode("utf-8", "replace"),
                        p.stderr.decode("utf-8", "replace"))
        found = sanitizer_findings(res.err)
        if found:
            raise TestFailure("sanitizer report from `ragd %s`: %s\n%s"
                              % (" ".join(args), found, tail(res.err, 60)))
        return res

    def data_dir_of(self, args, cwd=None):
        """The data dir a CLI run uses: --data-dir, else var/vectorstore under its cwd."""
        for i, a in enumerate(args):
            if a == "--data-dir" and i + 1 < len(args):
                return os.path.join(cwd or self.tmp, args[i + 1])
            if a.startswith("--data-dir="):
                return os.path.join(cwd or self.tmp, a.split("=", 1)[1])
        return os.path.join(cwd or self.tmp, "var", "vectorstore")

    def popen(self, args, env=None, **kw):
        args = [str(a) for a in args]
        env = backend_env(self.data_dir_of(args), env)
        p = subprocess.Popen([BIN] + args, stdin=subprocess.DEVNULL,
                             env=child_env(env), cwd=self.tmp, start_new_session=True, **kw)
        self.children.append(p)
        return p

    def cleanup(self):
        """Stops everything; returns a list of problems (sanitizer reports) to fail the test."""
        problems = []
        for p in self.children:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                problems.append("child %d did not die after SIGKILL" % p.pid)
        for d in self.daemons:
            try:
                d.stop()
            except Exception as e:  # noqa: BLE001 - report, go on cleaning
                problems.append("stopping daemon: %s" % e)
            found = sanitizer_findings(d.stderr_text())
            if found:
                problems.append("sanitizer report in daemon stderr (%s): %s\n%s"
                                % (d.stderr_path, found, tail(d.stderr_text(), 60)))
        if os.environ.get("RAGD_IT_KEEP"):
            problems and self.notes.append("kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return problems

    def daemon_logs(self):
        out = []
        for d in self.daemons:
            out.append("  daemon pid %d (%s) stderr:\n%s" % (d.pid, " ".join(d.cmd[1:]),
                                                            tail(d.stderr_text())))
        return "\n".join(out)


# ---- small helpers for tests ---------------------------------------------------------------
def write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mode = "wb" if isinstance(content, bytes) else "w"
    with open(path, mode) as f:
        f.write(content)


def wait_until(pred, timeout, what, poll=0.1):
    """Polls pred() until it returns a truthy value (returned) or timeout (TestFailure)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(poll)
    raise TestFailure("timed out after %.0f s waiting for %s (last: %s)"
                      % (timeout, what, short(last)))
