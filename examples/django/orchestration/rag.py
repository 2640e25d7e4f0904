# SPDX-License-Identifier: MIT
"""
rag.py - the Django side of ragd: retrieve(query, k=5, filters=None) returns the chunks that
answer a question and build_context(chunks) turns them into the block the LLM prompt gets. Both
fail soft: when RAG is switched off (settings.RAG_ENABLED, or the daemon's own RAG_ENABLED),
when ragd is down, slow (settings.RAGD_TIMEOUT, default 0.5 s) or answers with an error, the
chat goes on with "no context" ([] and ""), and the reason is logged. ingest() and health() are
for management commands and probes; they raise RagdError instead, because there the caller
must know. Standard library only (urllib), so nothing beyond Django is needed.
"""
import json
import logging
import urllib.error
import urllib.request
import uuid

from django.conf import settings

log = logging.getLogger(__name__)

QUERY_MAX_BYTES = 8000  # ragd refuses queries over 8192 bytes; keep a margin
K_MAX = 50  # ragd's default [retrieve] max_k


class RagdError(Exception):
    """ragd could not be reached, timed out, or answered with an error."""

    def __init__(self, message, code=None, status=None):
        super().__init__(message)
        self.code = code  # ragd's error code ("invalid_request", ...) or None
        self.status = status  # HTTP status, None when ragd did not answer


def _url(path):
    return settings.RAGD_URL.rstrip("/") + path


def _call(method, path, body=None, timeout=None, request_id=None):
    """One HTTP exchange with ragd. Returns the decoded JSON answer (any 2xx). Raises RagdError."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if request_id:
        headers["X-Request-Id"] = request_id
    token = getattr(settings, "RAGD_TOKEN", "")
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(_url(path), data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as e:
        payload = e.read()
        try:
            err = json.loads(payload).get("error", {})
        except ValueError:
            err = {}
        code = err.get("code")
        if code is None and e.code == 503:
            # /health answers 503 with its document, not an error object
            try:
                doc = json.loads(payload)
                code = doc.get("status")
            except ValueError:
                pass
        raise RagdError("ragd %s %s: HTTP %d %s" % (method, path, e.code,
                                                    err.get("message") or code or ""),
                        code=code, status=e.code) from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise RagdError("ragd at %s is not reachable: %s" % (settings.RAGD_URL, reason)) from None


def _truncate_utf8(text, limit):
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", "ignore")


def retrieve(query, k=5, filters=None, intent=None, request_id=None):
    """
    Returns the chunks (dicts with "score", "text", "source", "title", "heading", ...; best
    first) that answer query, at most k. filters go to ragd unchanged: {"source": "billing/",
    "tags": ["billing"]}, or an OpenAI-style filter {"type": "eq", "key": "lang", "value":
    "en"} / {"type": "and", "filters": [...]}. intent and request_id are logged by ragd with the
    retrieval. Returns [] when RAG is disabled, ragd is down, slow or refuses the request, or
    nothing is relevant enough.
    """
    if not settings.RAG_ENABLED:
        return []
    if not isinstance(query, str) or not query.strip():
        return []
    body = {"query": _truncate_utf8(query, QUERY_MAX_BYTES), "k": max(1, min(int(k), K_MAX))}
    if filters:
        body["filters"] = filters
    if intent:
        body["intent"] = str(intent)
    try:
        answer = _call("POST", "/retrieve", body, timeout=settings.RAGD_TIMEOUT,
                       request_id=request_id or uuid.uuid4().hex[:16])
    except RagdError as e:
        log.warning("retrieval skipped, answering without context: %s", e)
        return []
    if not answer.get("rag_enabled", True):
        return []
    return list(answer.get("results") or [])


def context(query, k=5, filters=None, intent=None, request_id=None):
    """
    Asks ragd's POST /context for the system prompt of a turn: a dict with "system_prompt",
    "sources", "low_confidence", "retrieved" and, when the documents do not answer,
    "clarifying_question". Returns None when RAG is disabled here, or ragd is down, slow or
    refuses (logged): the caller then goes on without context.
    """
    if not settings.RAG_ENABLED or not isinstance(query, str) or not query.strip():
        return None
    body = {"query": _truncate_utf8(query, QUERY_MAX_BYTES), "k": max(1, min(int(k), K_MAX))}
    if filters:
        body["filters"] = filters
    if intent:
        body["intent"] = str(intent)
    try:
        return _call("POST", "/context", body, timeout=settings.RAGD_TIMEOUT,
                     request_id=request_id or uuid.uuid4().hex[:16])
    except RagdError as e:
        log.warning("context skipped, answering without it: %s", e)
        return None


def chat(messages, intent=None, filters=None, model=None, request_id=None, **params):
    """
    One chat turn through ragd's OpenAI-compatible POST /v1/chat/completions: ragd retrieves,
    budgets, prompts, calls the model and guards the answer. params are passed through (tools,
    temperature, max_tokens, ...). Returns the chat.completion dict, with ragd's "ragd" object
    (sources, low_confidence, model used). Raises RagdError (with the upstream's status and
    code) when ragd or its model fails: there is no answer to fall back on.
    """
    body = dict(params)
    body["messages"] = list(messages)
    if model:
        body["model"] = model
    if intent:
        body["intent"] = str(intent)
    if filters:
        body["filters"] = filters
    return _call("POST", "/v1/chat/completions", body, timeout=settings.RAGD_CHAT_TIMEOUT,
                 request_id=request_id or uuid.uuid4().hex[:16])


def build_context(chunks):
    """
    Formats chunks as the context block for the prompt, one block per chunk in rank order,
    separated by a blank line: a tag line "[n] source > heading" (or "[n] source") then the text.
    Cite [n] in the answer and map it back with chunks[n-1]. Returns "" for no chunks.
    """
    blocks = []
    for n, c in enumerate(chunks or [], start=1):
        tag = "[%d] %s" % (n, c.get("source", "?"))
        if c.get("heading"):
            tag += " > " + c["heading"]
        blocks.append(tag + "\n" + c.get("text", ""))
    return "\n\n".join(blocks)


def ingest(path, reset=False, timeout=None):
    """Asks ragd to ingest path (a directory or file on ragd's host; give it absolute).
    Returns the ingest report. Raises RagdError when ragd is down or refuses."""
    return _call("POST", "/ingest", {"path": path, "reset": bool(reset)},
                 timeout=timeout or settings.RAGD_INGEST_TIMEOUT)


def health(timeout=None):
    """Returns ragd's /health document. Raises RagdError when ragd is down or unreachable."""
    return _call("GET", "/health", timeout=timeout or settings.RAGD_TIMEOUT)
