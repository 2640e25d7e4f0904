/* SPDX-License-Identifier: MIT */
/*
 * chat.h - the whole chat turn behind POST /v1/chat/completions (OpenAI chat-completions shape):
 *   - src/chat.c: the request (validated, ragd-only fields taken out, the rest passed through),
 *     the model route ([chat] model, or the fine-tuned model by flag and intent), the
 *     history-aware retrieval query, the token budget (context cut before history, history
 *     dropped oldest first, the system prompt and the user's last turn always kept), the
 *     messages sent upstream (the /context system prompt first), and the answer's guards: tool
 *     calls outside the [prompt] tools whitelist removed and counted, a "Sources" section for
 *     the [n] tags cited, the `ragd` object; streamed answers are filtered chunk by chunk;
 *   - src/chat_upstream.c: the HTTP client to the OpenAI-compatible upstream (retries before the
 *     first byte, timeouts, SSE parsing, cancellation);
 *   - src/http_chat.c: the HTTP handler (a thread per turn, SSE handed to the connection engine
 *     as chunks).
 * docs/CHAT.md describes the contract.
 */
#ifndef RAGD_CHAT_H
#define RAGD_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ragd/cfg.h"
#include "ragd/engine.h"
#include "ragd/filter.h"
#include "ragd/ragd.h"
#include "ragd/util.h"

/* Cross-key checks of the [chat] section, for cfg_validate: use_finetuned needs
 * finetuned_model, reserve_tokens below context_window, context_windows well-formed, URLs
 * http(s). Returns: RAGD_OK or RAGD_ERR_CONFIG with "chat.key: message". */
ragd_rc chat_cfg_check(const ragd_cfg *cfg, ragd_err *err);

/* Returns: 1 when name is one of list's comma- or space-separated entries (exact), else 0. */
int chat_list_has(const char *list, const char *name);

/* ---- model route ------------------------------------------------------------------------- */
typedef struct chat_route {
    char model[256];     /* the model the upstream receives */
    char base_url[1024]; /* API root the turn goes to */
    int finetuned;       /* 1: the fine-tuned route was taken */
    int window;          /* context window of model, tokens */
} chat_route;

/* Decides where a turn of intent goes: the fine-tuned model at finetuned_base_url (or base_url)
 * when use_finetuned is on and intent is in finetuned_intents, else the base model at base_url;
 * caller_model (may be NULL) replaces the name only with allow_caller_model. */
void chat_route_pick(const ragd_cfg *cfg, const char *intent, const char *caller_model,
                     chat_route *out);

/* Returns: the context window for model: its [chat] context_windows entry, else
 * [chat] context_window. */
int chat_window_for(const ragd_cfg *cfg, const char *model);

/* ---- request ----------------------------------------------------------------------------- */
typedef struct chat_request {
    json_t *root;        /* owned: the body without ragd's own fields; passed upstream */
    json_t *messages;    /* borrowed from root */
    int stream;
    int usage_asked;     /* the caller set stream_options.include_usage */
    char *intent;        /* owned; body "intent", else X-Ragd-Intent, else NULL */
    char *collection;    /* owned; body "collection", else X-Ragd-Collection, else NULL */
    json_t *filters;     /* owned reference or NULL */
    retrieve_filter *filter; /* owned; parsed OpenAI-style filter, or NULL */
    const char *source_prefix; /* borrowed from filters ({"source": ..., "tags": [...]}) */
    const char *tags[32];
    size_t tag_count;
    char *caller_model;  /* owned; the request's "model", or NULL */
    int max_tokens;      /* max_tokens / max_completion_tokens; 0 when none */
    size_t last_user;    /* index of the last user message */
    int tools_offered;   /* the request offers tools */
} chat_request;

/* Parses and checks a chat-completions body. header_intent and header_collection (may be NULL)
 * are the X-Ragd-* headers; the body fields win. Refuses (RAGD_ERR_INVALID, message naming the
 * field) a body that is not an object, messages that are not a non-empty array of
 * {role, content} with a user turn, wrong types, and tools outside the whitelist (*code gets
 * "tool_not_allowed"; else "invalid_request"). Returns: RAGD_OK and *out (free with
 * chat_request_free). */
ragd_rc chat_request_parse(const ragd_cfg *cfg, const char *body, size_t len,
                           const char *header_intent, const char *header_collection,
                           chat_request *out, const char **code, ragd_err *err);
void chat_request_free(chat_request *r);

/* The retrieval query for the user's last turn: the turn itself, or, when it has fewer than
 * [chat] followup_terms search terms and earlier user turns exist, the last
 * [chat] history_query_turns of them followed by it. *turns_used: earlier turns folded in.
 * Returns: new string (free()), or NULL on OOM. */
char *chat_query_build(const ragd_cfg *cfg, json_t *messages, size_t last_user, int *turns_used);

/* Returns: the estimated tokens of one message (content text, tool calls, name, plus 4 for
 * the message's framing), by the chunker's estimator. */
int chat_message_tokens(json_t *message);

/* ---- budget ------------------------------------------------------------------------------ */
typedef struct chat_budget {
    int available;       /* window - reserve */
    int fixed;           /* system prompt without context, system messages, last turn, tools */
    int context_before;  /* the retrieved context's tokens */
    int context_budget;  /* tokens the context may keep (>= context_before: no cut) */
    size_t history_dropped; /* history units dropped from the oldest */
    int history_tokens_dropped;
    int over;            /* the fixed part alone is over the budget (sent anyway) */
} chat_budget;

/* Plans the budget: everything fits, else the context is cut (down to min_context), then
 * history units (history[0] oldest) are dropped oldest first, then the context is cut further
 * (to 0). The fixed part is never dropped. */
void chat_budget_plan(int available, int fixed, const int *history, size_t nhistory,
                      int context_tokens, int min_context, chat_budget *out);

/* ---- guards ------------------------------------------------------------------------------ */

/* Removes from an assistant message (a chat.completion choice's "message") the tool calls and
 * the legacy function_call naming a tool outside whitelist; with none left, "tool_calls" is
 * deleted. Returns: how many were removed. */
int chat_tool_calls_filter(json_t *message, const char *whitelist);

/* Per-choice state of a streamed answer's tool calls: upstream index -> index passed on. */
#define CHAT_STREAM_TOOLS_MAX 64
typedef struct chat_tool_stream {
    int map[CHAT_STREAM_TOOLS_MAX]; /* 0: not seen; -1: blocked; n > 0: passed on as n - 1 */
    int next;
    int blocked;
} chat_tool_stream;

/* Filters one streamed delta's tool_calls in place (a call is judged by the name in its first
 * fragment; later fragments follow that verdict). Returns: calls newly blocked. */
int chat_tool_delta_filter(json_t *delta, const char *whitelist, chat_tool_stream *st);

/* Returns: the 1-based tags [n] (1 <= n <= count) cited in text, as a bit set of up to 64. */
uint64_t chat_cited_tags(const char *text, size_t count);

/* Returns: 1 when text already ends with a "Sources" section (a line starting with "Sources",
 * "**Sources" or "## Sources"). */
int chat_has_sources_section(const char *text);

/* ---- a prepared turn --------------------------------------------------------------------- */
typedef struct chat_plan {
    chat_route route;
    char *intent;          /* owned; the turn's intent (request's or [chat] default_intent) */
    char *collection;      /* owned; the request's collection, or NULL */
    int rag_enabled;
    int retrieved;         /* retrieval ran for this turn */
    int low_confidence;
    int ask;               /* answer with clarify, no upstream call */
    char *clarify;         /* owned; the clarifying question, or NULL */
    char *query;           /* owned; the retrieval query, or NULL */
    int query_turns;
    engine_answer answer;  /* owned */
    int have_answer;
    chat_budget budget;
    int prompt_estimate;   /* estimated prompt tokens of the upstream request */
    json_t *upstream;      /* owned; the body to send, or NULL when ask */
    const char *tools;     /* borrowed from cfg: the whitelist at plan time */
    int append_sources;
    int stream;
    int usage_asked;
    double retrieve_ms;
} chat_plan;

/* Prepares a turn: route, retrieval (when RAG is on and the intent retrieves), low confidence,
 * budget and the upstream body. req is consumed (its root moves into the plan).
 * Returns: RAGD_OK and *out (free with chat_plan_free), or the retrieval's error. */
ragd_rc chat_plan_build(engine *e, const ragd_cfg *cfg, chat_request *req, chat_plan *out,
                        ragd_err *err);
void chat_plan_free(chat_plan *p);

/* The `ragd` object of the answer. cited: tags cited (bit set). Returns: new reference. */
json_t *chat_plan_json(const chat_plan *p, uint64_t cited, int blocked, int sources_appended);

/* The text of the "Sources" section for the cited tags ("\n\nSources:\n[1] Title - source,
 * p. 3\n..."), "" when none. Returns: new string (free()), or NULL on OOM. */
char *chat_sources_text(const chat_plan *p, uint64_t cited);

/* Post-processes a non-streamed chat.completion from the upstream in place: tool-call guard,
 * Sources section, the `ragd` object. Returns: tool calls blocked. */
int chat_completion_finish(chat_plan *p, json_t *completion);

/* The answer when the turn is answered without the upstream (low confidence, ask): a
 * chat.completion object. Returns: new reference. */
json_t *chat_clarify_completion(const chat_plan *p);

/* ---- streamed answers -------------------------------------------------------------------- */
#define CHAT_STREAM_CHOICES 8
typedef struct chat_stream {
    chat_plan *plan;       /* borrowed */
    chat_tool_stream tools[CHAT_STREAM_CHOICES];
    util_buf text[CHAT_STREAM_CHOICES]; /* content seen per choice, for the cited tags */
    json_t *held;          /* owned array: finish and usage chunks held until the end */
    json_t *last;          /* owned: a chunk to copy id/created/model from */
    int blocked;
    int64_t prompt_tokens, completion_tokens;
    int have_usage;
    int done;              /* [DONE] seen */
} chat_stream;

void chat_stream_init(chat_stream *s, chat_plan *plan);
void chat_stream_free(chat_stream *s);

/* Handles one upstream SSE data payload (a chunk, or "[DONE]"): appends the SSE events to pass
 * on ("data: ...\n\n") to out. Returns: 0, or -1 for a payload that is not a JSON object (out
 * then holds an error event). */
int chat_stream_event(chat_stream *s, const char *data, size_t len, util_buf *out);

/* Ends the stream: the Sources delta, the held chunks (the last carrying `ragd`) and
 * "data: [DONE]". Returns: 0 or -1 (OOM). */
int chat_stream_end(chat_stream *s, util_buf *out);

/* The whole SSE stream of a turn answered without the upstream. Returns: 0 or -1. */
int chat_clarify_stream(const chat_plan *p, util_buf *out);

/* Records a finished turn: metrics and a JSONL log line (no message text unless
 * [log] log_queries). outcome: "answered", "clarified", "forwarded", "upstream_error",
 * "cancelled". */
void chat_turn_record(const ragd_cfg *cfg, const chat_plan *p, const char *outcome,
                      long upstream_status, int64_t prompt_tokens, int64_t completion_tokens,
                      int blocked, double upstream_ms, double first_token_ms);

#endif
