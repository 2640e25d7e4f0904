# SPDX-License-Identifier: MIT
"""
llm.py - the LLM-wrapper hook: before an LLM call for an intent in settings.RAG_INTENTS
(general_chat, search_info), retrieve context for the user's last message and prepend it as a
system message that asks for [n] citations. Other intents (creating a task, small talk about the
app itself) go to the LLM untouched. When no context comes back (ragd down, RAG disabled, nothing
relevant) the call goes on without it. Wrap any LLM client function with @with_rag.
"""
import functools

from django.conf import settings

from orchestration import rag

CONTEXT_PROMPT = (
    "Answer from the context below when it is relevant, and cite the [n] tags of the passages "
    "you use. If the context does not cover the question, say so instead of guessing.\n\n"
    "Context:\n"
)


def last_user_message(messages):
    for m in reversed(messages):
        if m.get("role") == "user":
            return m.get("content", "")
    return ""


def prepare(intent, messages, filters=None, request_id=None):
    """
    Returns (messages, chunks): the messages for the LLM, with a context system message first when
    intent uses RAG and something relevant was found, and the chunks used (for a "Sources"
    section). messages is a list of {"role", "content"} dicts; it is not modified.
    """
    if intent not in settings.RAG_INTENTS:
        return list(messages), []
    chunks = rag.retrieve(last_user_message(messages), k=settings.RAG_TOP_K, filters=filters,
                          intent=intent, request_id=request_id)
    context = rag.build_context(chunks)
    if not context:
        return list(messages), []
    return [{"role": "system", "content": CONTEXT_PROMPT + context}] + list(messages), chunks


def with_rag(llm_call):
    """
    Decorator for an LLM client function llm_call(messages, **kwargs) -> reply. The wrapped
    function takes intent= (and optionally rag_filters=, request_id=) and returns
    {"reply": ..., "sources": [{"n", "source", "title", "heading"}, ...]}.
    """
    @functools.wraps(llm_call)
    def wrapper(messages, intent=None, rag_filters=None, request_id=None, **kwargs):
        full, chunks = prepare(intent, messages, filters=rag_filters, request_id=request_id)
        reply = llm_call(full, **kwargs)
        sources = [{"n": n, "source": c.get("source"), "title": c.get("title"),
                    "heading": c.get("heading")} for n, c in enumerate(chunks, start=1)]
        return {"reply": reply, "sources": sources}
    return wrapper


@with_rag
def echo_llm(messages):
    """A stand-in LLM for the example and its tests: answers with what it was given, so the
    caller can see whether context was prepended. Replace with the real client call."""
    system = [m["content"] for m in messages if m.get("role") == "system"]
    return {"system": system, "question": last_user_message(messages)}
