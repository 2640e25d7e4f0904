# SPDX-License-Identifier: MIT
"""
tests.py - the example's tests, run by Django's test runner against the REAL ragd binary
($RAGD_BIN, set by tests/run.sh; else build/asan/ragd or ./ragd from the repository root),
started on a free loopback port with a temporary data dir: the management command ingests
docs/, retrieve() and build_context() answer from it, the LLM hook prepends context for
general_chat and search_info only, the request id reaches ragd's log, and the fallbacks hold with
RAG disabled (here or in ragd), with ragd stopped, and with ragd too slow to answer. The LLM
wrapper both ways: /context first (a low-confidence turn asks the clarifying question without an
LLM call), and ragd's chat endpoint with tests/fake_chat.py as the model (grounded, cited
answers, the clarifying question without a model call, the bearer token, OpenAI-style filters
passed through unchanged, USE_FINETUNED_MODEL).
"""
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import SimpleTestCase, override_settings

from orchestration import llm, rag

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(PROJECT))
DOCS = os.path.join(PROJECT, "docs")
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
REFUND_QUESTION = "can I get a refund after 30 days?"


def ragd_binary():
    for path in (os.environ.get("RAGD_BIN"), os.path.join(REPO, "build", "asan", "ragd"),
                 os.path.join(REPO, "ragd")):
        if path and os.access(path, os.X_OK):
            return os.path.abspath(path)
    raise RuntimeError("no ragd binary: set RAGD_BIN or run `make asan` in the repository")


def free_port():
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class Ragd:
    """`ragd serve` on a free port with a temp data dir; stop() checks for sanitizer reports."""

    def __init__(self, env=None):
        self.tmp = tempfile.mkdtemp(prefix="ragd-django-")
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log_file = os.path.join(self.tmp, "rag.log")
        self.stderr_path = os.path.join(self.tmp, "stderr.log")
        child_env = {k: v for k, v in os.environ.items()
                     if not k.startswith("RAGD_") and
                     k not in ("RAG_ENABLED", "OPENAI_API_KEY", "USE_FINETUNED_MODEL")}
        child_env["RAGD_LOG_FILE"] = self.log_file
        # POST /ingest reads only inside the allowed roots: the example's own docs.
        child_env["RAGD_INGEST_ALLOWED_ROOTS"] = DOCS
        child_env.update(env or {})
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [ragd_binary(), "serve", "--listen", "127.0.0.1:%d" % self.port, "--data-dir",
             os.path.join(self.tmp, "data"), "--no-ingest"],
            stdin=subprocess.DEVNULL, stdout=self._err, stderr=self._err, cwd=self.tmp,
            env=child_env, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("ragd exited with %s:\n%s" % (self.proc.returncode,
                                                               self.stderr()))
            try:
                urllib.request.urlopen(self.url + "/health", timeout=2).read()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("ragd did not answer /health within 30 s:\n%s" % self.stderr())

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def metrics(self):
        text = urllib.request.urlopen(self.url + "/metrics", timeout=5).read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def log_lines(self):
        try:
            with open(self.log_file, encoding="utf-8") as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def stop(self):
        """SIGTERM, wait; returns the exit status. Raises when the sanitizers reported."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        if not self._err.closed:
            self._err.close()
        text = self.stderr()
        for marker in SANITIZER_MARKERS:
            if marker in text:
                raise AssertionError("sanitizer report from ragd:\n%s" % text[-3000:])
        return self.proc.returncode

    def cleanup(self):
        try:
            return self.stop()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


class RagdTestCase(SimpleTestCase):
    """Starts one ragd for the class and points settings.RAGD_URL at it."""

    ragd_env = None
    extra_settings = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ragd = Ragd(cls.ragd_env)
        values = dict(RAGD_URL=cls.ragd.url, RAG_ENABLED=True, RAGD_TIMEOUT=10.0,
                      LLM_BACKEND="context", RAGD_TOKEN="", USE_FINETUNED_MODEL=False)
        values.update(cls.extra_settings or {})
        cls._settings = override_settings(**values)
        cls._settings.enable()

    @classmethod
    def tearDownClass(cls):
        cls._settings.disable()
        code = cls.ragd.cleanup()
        super().tearDownClass()
        if code != 0:
            raise AssertionError("ragd exited with %s on SIGTERM" % code)


class LiveRagdTests(RagdTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        out = io.StringIO()
        call_command("ingest_docs", "--path", DOCS, "--reset", stdout=out)
        cls.ingest_output = out.getvalue()

    def test_ingest_docs_command_reports(self):
        self.assertIn("3 seen, 3 added", self.ingest_output)
        self.assertIn("(after reset)", self.ingest_output)
        self.assertEqual(rag.health()["store"]["documents"], 3)
        out = io.StringIO()
        call_command("ingest_docs", "--path", DOCS, stdout=out)
        self.assertIn("3 unchanged", out.getvalue())

    def test_ingest_docs_missing_path(self):
        with self.assertRaises(CommandError):
            call_command("ingest_docs", "--path", os.path.join(DOCS, "no-such-dir"))

    def test_retrieve_returns_chunks(self):
        chunks = rag.retrieve(REFUND_QUESTION, k=3)
        self.assertTrue(chunks)
        self.assertLessEqual(len(chunks), 3)
        self.assertEqual(chunks[0]["source"], "refunds.md")
        self.assertGreater(chunks[0]["score"], 0)
        self.assertEqual(sorted(chunks, key=lambda c: -c["score"]), chunks)

    def test_retrieve_filters(self):
        chunks = rag.retrieve("add a VAT number to my invoices", k=5, filters={"source": "billing/"})
        self.assertTrue(chunks)
        self.assertTrue(all(c["source"].startswith("billing/") for c in chunks), chunks)
        tagged = rag.retrieve(REFUND_QUESTION, filters={"tags": ["logistics"]})
        self.assertTrue(all("logistics" in c["tags"] for c in tagged), tagged)

    def test_build_context_format(self):
        chunks = rag.retrieve(REFUND_QUESTION, k=2)
        context = rag.build_context(chunks)
        self.assertTrue(context.startswith("[1] refunds.md > Refund policy"))
        self.assertIn(chunks[0]["text"], context)
        if len(chunks) > 1:
            self.assertIn("\n\n[2] ", context)
        self.assertEqual(rag.build_context([]), "")
        self.assertEqual(rag.build_context([{"source": "a.txt", "heading": "", "text": "x"}]),
                         "[1] a.txt\nx")

    def test_hook_prepends_context_for_rag_intents(self):
        for intent in ("general_chat", "search_info"):
            seen = []

            @llm.with_rag
            def fake_llm(messages):
                seen.append(messages)
                return "ok"

            result = fake_llm([{"role": "user", "content": REFUND_QUESTION}], intent=intent)
            self.assertEqual(result["reply"], "ok")
            messages = seen[0]
            self.assertEqual(messages[0]["role"], "system", intent)
            self.assertIn("[1] refunds.md", messages[0]["content"])
            self.assertEqual(messages[-1], {"role": "user", "content": REFUND_QUESTION})
            self.assertEqual(result["sources"][0]["n"], 1)
            self.assertEqual(result["sources"][0]["source"], "refunds.md")

    def test_hook_leaves_other_intents_alone(self):
        before = self.ragd.metrics()
        messages = [{"role": "user", "content": REFUND_QUESTION}]
        result = llm.echo_llm(messages, intent="create_task")
        self.assertEqual(result["reply"]["system"], [])
        self.assertEqual(result["sources"], [])
        after = self.ragd.metrics()
        self.assertEqual(before["ragd_retrieval_hits_total"] + before["ragd_retrieval_misses_total"],
                         after["ragd_retrieval_hits_total"] + after["ragd_retrieval_misses_total"],
                         "a create_task turn must not call ragd")

    def test_request_id_and_intent_reach_ragd_log(self):
        rag.retrieve(REFUND_QUESTION, intent="search_info", request_id="django-test-1")
        deadline = time.monotonic() + 20
        line = None
        while time.monotonic() < deadline and line is None:
            line = next((l for l in self.ragd.log_lines()
                         if l.get("request_id") == "django-test-1"), None)
            time.sleep(0.05)
        self.assertIsNotNone(line, "no log line with the request id")
        self.assertEqual(line["intent"], "search_info")
        self.assertTrue(line["hit"])
        self.assertNotIn("query", line)  # raw queries stay out of the log by default

    def test_chat_view(self):
        resp = self.client.post("/chat", json.dumps({"message": REFUND_QUESTION,
                                                     "intent": "search_info"}),
                                content_type="application/json")
        self.assertEqual(resp.status_code, 200)
        body = resp.json()
        self.assertIn("[1] refunds.md", body["reply"]["system"][0])
        self.assertEqual(body["sources"][0]["source"], "refunds.md")
        resp = self.client.post("/chat", "{}", content_type="application/json")
        self.assertEqual(resp.status_code, 400)

    def test_low_confidence_asks_instead_of_calling_the_llm(self):
        called = []

        @llm.with_rag
        def fake_llm(messages, model=None):
            called.append(messages)
            return "an answer"

        result = fake_llm([{"role": "user", "content": "zorblax reactor warp calibration?"}],
                          intent="search_info")
        self.assertEqual(called, [], "the LLM was called for a low-confidence turn")
        self.assertTrue(result["clarifying"])
        self.assertTrue(result["reply"].strip().endswith("?"), result["reply"])

    def test_openai_style_filters_pass_through(self):
        f = {"type": "eq", "key": "source", "value": "billing/"}
        chunks = rag.retrieve("add a VAT number to my invoices", k=5, filters=f)
        self.assertTrue(chunks)
        self.assertTrue(all(c["source"].startswith("billing/") for c in chunks), chunks)
        none = rag.retrieve(REFUND_QUESTION, filters={"type": "eq", "key": "source",
                                                      "value": "no-such/"})
        self.assertEqual(none, [])

    def test_use_finetuned_model_setting(self):
        with self.settings(USE_FINETUNED_MODEL=True, LLM_FINETUNED_MODEL="mathia-ft"):
            self.assertEqual(llm.model_for("general_chat"), "mathia-ft")
            self.assertEqual(llm.model_for("search_info"), "gpt-4o-mini")
            result = llm.echo_llm([{"role": "user", "content": REFUND_QUESTION}],
                                  intent="general_chat")
            self.assertEqual(result["reply"]["model"], "mathia-ft")
        self.assertEqual(llm.model_for("general_chat"), "gpt-4o-mini")  # rollback by flag

    def test_rag_disabled_in_settings_sends_nothing(self):
        before = self.ragd.metrics()
        with self.settings(RAG_ENABLED=False):
            self.assertEqual(rag.retrieve(REFUND_QUESTION), [])
            result = llm.echo_llm([{"role": "user", "content": REFUND_QUESTION}],
                                  intent="general_chat")
        self.assertEqual(result["reply"]["system"], [])
        after = self.ragd.metrics()
        self.assertEqual(before["ragd_retrieval_hits_total"], after["ragd_retrieval_hits_total"])
        self.assertEqual(before["ragd_retrieval_misses_total"],
                         after["ragd_retrieval_misses_total"])


class FakeChatUpstream:
    """tests/fake_chat.py: the OpenAI chat API ragd calls, recording what it receives."""

    KEY = "sk-django-fake"

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(REPO, "tests", "fake_chat.py"), "--port", "0",
             "--api-key", self.KEY], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            start_new_session=True)
        line = self.proc.stdout.readline().decode().split()
        if len(line) != 2 or line[0] != "READY":
            self.proc.kill()
            raise RuntimeError("fake_chat.py did not start: %r" % line)
        self.url = "http://127.0.0.1:%s" % line[1]

    def requests(self):
        with urllib.request.urlopen(self.url + "/_requests", timeout=10) as r:
            return json.load(r)["requests"]

    def stop(self):
        self.proc.kill()
        self.proc.wait(30)


TOKEN = "django-ragd-token"


class RagdChatEndpointTests(RagdTestCase):
    """The LLM wrapper through ragd's POST /v1/chat/completions, ragd behind a bearer token."""

    extra_settings = {"LLM_BACKEND": "ragd", "RAGD_TOKEN": TOKEN}

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeChatUpstream()
        cls.ragd_env = {"RAGD_CHAT_BASE_URL": cls.fake.url + "/v1",
                        "RAGD_CHAT_API_KEY": FakeChatUpstream.KEY,
                        "RAGD_CHAT_MODEL": "base-model", "RAGD_SERVER_AUTH_TOKEN": TOKEN}
        try:
            super().setUpClass()
            call_command("ingest_docs", "--path", DOCS, "--reset", stdout=io.StringIO())
        except Exception:
            cls.fake.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fake.stop()

    def test_grounded_cited_answer(self):
        result = llm.ask_ragd([{"role": "user", "content": REFUND_QUESTION}],
                              intent="search_info")
        self.assertFalse(result["clarifying"])
        self.assertIn("[1]", result["reply"])
        self.assertIn("Sources:", result["reply"])
        self.assertEqual(result["sources"][0]["source"], "refunds.md")
        self.assertEqual(result["model"], "base-model")
        sent = self.fake.requests()[-1]["body"]["messages"]
        self.assertIn("<<<CONTEXT", sent[0]["content"])
        self.assertEqual(sent[-1]["content"], REFUND_QUESTION)

    def test_low_confidence_clarifies_without_a_model_call(self):
        before = len(self.fake.requests())
        result = llm.ask_ragd([{"role": "user", "content": "zorblax reactor warp calibration?"}],
                              intent="search_info")
        self.assertTrue(result["clarifying"])
        self.assertTrue(result["reply"].strip().endswith("?"), result["reply"])
        self.assertEqual(len(self.fake.requests()), before, "the model was called")

    def test_filters_reach_ragd_unchanged(self):
        f = {"type": "eq", "key": "source", "value": "billing/"}
        result = llm.ask_ragd([{"role": "user", "content": "add a VAT number to my invoices"}],
                              intent="search_info", rag_filters=f)
        self.assertTrue(result["sources"])
        self.assertTrue(all(s["source"].startswith("billing/") for s in result["sources"]))

    def test_bearer_token(self):
        with self.settings(RAGD_TOKEN=""):
            with self.assertRaises(rag.RagdError) as cm:
                llm.ask_ragd([{"role": "user", "content": REFUND_QUESTION}])
            self.assertEqual(cm.exception.status, 401)
            with self.assertLogs("orchestration.rag", level="WARNING"):
                self.assertEqual(rag.retrieve(REFUND_QUESTION), [])
        self.assertTrue(rag.retrieve(REFUND_QUESTION))

    def test_chat_view_through_ragd(self):
        resp = self.client.post("/chat", json.dumps({"message": REFUND_QUESTION,
                                                     "intent": "general_chat"}),
                                content_type="application/json")
        self.assertEqual(resp.status_code, 200)
        body = resp.json()
        self.assertIn("Sources:", body["reply"])
        self.assertEqual(body["sources"][0]["source"], "refunds.md")
        with self.settings(RAGD_URL="http://127.0.0.1:%d" % free_port()):
            resp = self.client.post("/chat", json.dumps({"message": REFUND_QUESTION}),
                                    content_type="application/json")
        self.assertEqual(resp.status_code, 502)


class RagdRagDisabledTests(RagdTestCase):
    """ragd itself runs with RAG_ENABLED=false: the client answers without context."""

    ragd_env = {"RAG_ENABLED": "false"}

    def test_no_context(self):
        call_command("ingest_docs", "--path", DOCS, stdout=io.StringIO())
        self.assertEqual(rag.retrieve(REFUND_QUESTION), [])
        result = llm.echo_llm([{"role": "user", "content": REFUND_QUESTION}],
                              intent="search_info")
        self.assertEqual(result["reply"]["system"], [])
        self.assertEqual(rag.health()["status"], "degraded")


class RagdStoppedTests(SimpleTestCase):
    """ragd was running and has been stopped: every call falls back or fails clearly."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        daemon = Ragd()
        cls.url = daemon.url
        with override_settings(RAGD_URL=daemon.url):
            call_command("ingest_docs", "--path", DOCS, stdout=io.StringIO())
            cls.chunks_while_up = rag.retrieve(REFUND_QUESTION)
        cls.exit_code = daemon.cleanup()

    def test_stopped_cleanly(self):
        self.assertTrue(self.chunks_while_up)
        self.assertEqual(self.exit_code, 0)

    def test_retrieve_falls_back_to_no_context(self):
        with self.settings(RAGD_URL=self.url):
            with self.assertLogs("orchestration.rag", level="WARNING") as logs:
                self.assertEqual(rag.retrieve(REFUND_QUESTION), [])
        self.assertIn("not reachable", logs.output[0])

    def test_hook_still_calls_the_llm(self):
        with self.settings(RAGD_URL=self.url):
            result = llm.echo_llm([{"role": "user", "content": REFUND_QUESTION}],
                                  intent="general_chat")
        self.assertEqual(result["reply"]["question"], REFUND_QUESTION)
        self.assertEqual(result["reply"]["system"], [])
        self.assertEqual(result["sources"], [])

    def test_ingest_command_fails_clearly(self):
        with self.settings(RAGD_URL=self.url):
            with self.assertRaises(CommandError) as cm:
                call_command("ingest_docs", "--path", DOCS)
        self.assertIn("not reachable", str(cm.exception))

    def test_health_raises(self):
        with self.settings(RAGD_URL=self.url):
            with self.assertRaises(rag.RagdError):
                rag.health()


class RagdTooSlowTests(SimpleTestCase):
    """A sidecar that accepts connections but never answers: the short timeout wins."""

    def test_timeout_falls_back(self):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # never accepted: the request waits until the client's timeout
        try:
            url = "http://127.0.0.1:%d" % listener.getsockname()[1]
            with self.settings(RAGD_URL=url, RAGD_TIMEOUT=0.2):
                with self.assertLogs("orchestration.rag", level="WARNING"):
                    self.assertEqual(rag.retrieve(REFUND_QUESTION), [])
                result = llm.echo_llm([{"role": "user", "content": REFUND_QUESTION}],
                                      intent="search_info")
            self.assertEqual(result["reply"]["system"], [])
        finally:
            listener.close()
