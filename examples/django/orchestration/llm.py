# SPDX-License-Identifier: MIT
"""
llm.py - the LLM wrapper, two ways (settings.LLM_BACKEND):

"ragd"     ask_ragd(): the whole turn goes to ragd's OpenAI-compatible POST /v1/chat/completions.
           ragd retrieves for the intents that retrieve, puts its system prompt (persona, tools,
           grounding rule, fenced context, numbered sources) first, budgets the history, calls
           the base or fine-tuned model, blocks tool calls outside its whitelist, and appends a
           "Sources" section. A low-confidence turn comes back as the clarifying question, with
           no model call. Any OpenAI client does the same by pointing its base URL at ragd.
"context"  @with_rag around your own LLM client: before the call, ragd's POST /context gives the
           system prompt for the user's last message; it goes first, the caller's messages after.
           A low-confidence turn is answered with the clarifying question and the LLM is not
           called. When ragd is down, slow or RAG is off, the call goes on without context.

model_for(intent) applies settings.USE_FINETUNED_MODEL: the fine-tuned model for
FINETUNED_INTENTS when it is on, LLM_MODEL otherwise (rollback by flag).
"""
import functools
import inspect

from django.conf import settings

from orchestration import rag


def last_user_message(messages):
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content", "")
            if isinstance(content, list):
                return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
            return content
    return ""


def model_for(intent):
    """The model name for a turn of intent, by settings.USE_FINETUNED_MODEL."""
    if (settings.USE_FINETUNED_MODEL and settings.LLM_FINETUNED_MODEL
            and intent in settings.FINETUNED_INTENTS):
        return settings.LLM_FINETUNED_MODEL
    return settings.LLM_MODEL


def _sources(items):
    return [{"n": s.get("n"), "source": s.get("source"), "title": s.get("title"),
             "heading": s.get("heading"), "page": s.get("page")} for s in items or []]


def prepare(intent, messages, filters=None, request_id=None):
    """
    Returns (messages, sources, clarifying_question): the messages for the LLM (ragd's system
    prompt first when intent uses RAG and ragd answered), the sources the prompt cites, and the
    clarifying question when the documents do not answer (then do not call the LLM; ask it).
    messages is a list of {"role", "content"} dicts; it is not modified.
    """
    if intent not in settings.RAG_INTENTS:
        return list(messages), [], None
    ctx = rag.context(last_user_message(messages), k=settings.RAG_TOP_K, filters=filters,
                      intent=intent, request_id=request_id)
    if not ctx or not ctx.get("rag_enabled", True) or not ctx.get("retrieved", True):
        return list(messages), [], None
    if ctx.get("low_confidence"):
        return list(messages), [], ctx.get("clarifying_question") or \
            "Could you tell me more about what you need?"
    system = {"role": "system", "content": ctx.get("system_prompt", "")}
    return [system] + list(messages), _sources(ctx.get("sources")), None


def with_rag(llm_call):
    """
    Decorator for an LLM client function llm_call(messages, **kwargs) -> reply (given model=,
    by model_for(intent), when it takes a model argument). The
    wrapped function takes intent= (and optionally rag_filters=, request_id=) and returns
    {"reply": ..., "sources": [{"n", "source", "title", "heading", "page"}, ...],
    "clarifying": bool}.
    """
    params = inspect.signature(llm_call).parameters
    takes_model = "model" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())

    @functools.wraps(llm_call)
    def wrapper(messages, intent=None, rag_filters=None, request_id=None, **kwargs):
        full, sources, clarify = prepare(intent, messages, filters=rag_filters,
                                         request_id=request_id)
        if clarify is not None:
            return {"reply": clarify, "sources": [], "clarifying": True}
        if takes_model:
            kwargs.setdefault("model", model_for(intent))
        reply = llm_call(full, **kwargs)
        return {"reply": reply, "sources": sources, "clarifying": False}
    return wrapper


@with_rag
def echo_llm(messages, model=None):
    """A stand-in LLM for the example and its tests: answers with what it was given, so the
    caller can see whether context was prepended. Replace with the real client call."""
    system = [m["content"] for m in messages if m.get("role") == "system"]
    return {"system": system, "question": last_user_message(messages), "model": model}


def ask_ragd(messages, intent=None, rag_filters=None, request_id=None, **params):
    """
    One turn through ragd's chat endpoint. Returns {"reply": the assistant's text (with ragd's
    "Sources" section when it cites), "sources": the cited sources, "clarifying": True when
    ragd answered with the clarifying question, "model": the model ragd used, "tool_calls": the
    (whitelisted) tool calls}. Raises rag.RagdError when ragd or its model fails.
    """
    completion = rag.chat(messages, intent=intent or "general_chat", filters=rag_filters,
                          model=model_for(intent), request_id=request_id, **params)
    message = completion["choices"][0]["message"]
    info = completion.get("ragd") or {}
    cited = [s for s in info.get("sources") or [] if s.get("cited")]
    return {"reply": message.get("content") or "", "sources": _sources(cited),
            "clarifying": bool(info.get("low_confidence") and not info.get("upstream_called")),
            "model": info.get("model"), "tool_calls": message.get("tool_calls") or []}


def answer(messages, intent=None, rag_filters=None, request_id=None):
    """The chat turn by settings.LLM_BACKEND: "ragd" (ask_ragd) or "context" (echo_llm here;
    your LLM client wrapped in @with_rag in a real app)."""
    if settings.LLM_BACKEND == "ragd":
        return ask_ragd(messages, intent=intent, rag_filters=rag_filters, request_id=request_id)
    return echo_llm(messages, intent=intent, rag_filters=rag_filters, request_id=request_id)
