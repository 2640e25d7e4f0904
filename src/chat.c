/* SPDX-License-Identifier: MIT */
/*
 * chat.c - the chat turn behind POST /v1/chat/completions, without any networking: the request
 * (OpenAI chat-completions shape; ragd's own fields intent, collection, filters taken out, every
 * other field passed through), the model route (base or fine-tuned model by [chat] use_finetuned
 * and the intent), the history-aware retrieval query, the token budget, the messages sent
 * upstream (the /context system prompt first, the caller's system messages after it), and the
 * guards applied to the upstream's answer, whole or streamed: tool calls outside the
 * [prompt] tools whitelist removed and counted, a "Sources" section for the cited [n] tags, and
 * the `ragd` object that says what was retrieved, which query and model were used and what the
 * budget dropped. Tokens are counted with the chunker's estimator (ingest_tokens_count).
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "ragd/chat.h"
#include "ragd/http.h"
#include "ragd/ingest.h"
#include "ragd/log.h"
#include "ragd/log_event.h"
#include "ragd/metrics.h"
#include "ragd/retrieve.h"

#define MESSAGE_OVERHEAD_TOKENS 4
#define INTENT_MAX 64
#define QUERY_MAX_BYTES 8192

/* ---- configuration ------------------------------------------------------------------------ */

/* Calls fn for each entry of a comma- or space-separated list. Returns: 1 as soon as fn does. */
static int list_each(const char *list, int (*fn)(void *, const char *, size_t), void *ctx)
{
    const char *p = list ? list : "";
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p)) p++;
        size_t n = 0;
        while (p[n] && p[n] != ',' && !isspace((unsigned char)p[n])) n++;
        if (n > 0 && fn(ctx, p, n)) return 1;
        p += n;
    }
    return 0;
}

static int name_equals(void *ctx, const char *s, size_t n)
{
    const char *name = ctx;
    return strlen(name) == n && strncmp(name, s, n) == 0;
}

int chat_list_has(const char *list, const char *name)
{
    return name != NULL && list_each(list, name_equals, (void *)name);
}

typedef struct window_find {
    const char *model;
    int window;
    int bad;
} window_find;

/* One "model:tokens" entry of [chat] context_windows; the model name may itself hold colons
 * (ollama's "llama3:8b"), so the last colon separates. */
static int window_entry(void *ctx, const char *s, size_t n)
{
    window_find *w = ctx;
    const char *colon = NULL;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ':') colon = s + i;
    if (colon == NULL || colon == s || colon == s + n - 1) {
        w->bad = 1;
        return 1;
    }
    long v = 0;
    for (const char *c = colon + 1; c < s + n; c++) {
        if (!isdigit((unsigned char)*c) || v > 100000000) {
            w->bad = 1;
            return 1;
        }
        v = v * 10 + (*c - '0');
    }
    if (v < 256 || v > 10000000) {
        w->bad = 1;
        return 1;
    }
    if (w->model && strlen(w->model) == (size_t)(colon - s) &&
        strncmp(w->model, s, (size_t)(colon - s)) == 0)
        w->window = (int)v;
    return 0;
}

int chat_window_for(const ragd_cfg *cfg, const char *model)
{
    window_find w = {.model = model, .window = 0};
    const char *spec = __atomic_load_n(&cfg->chat_context_windows, __ATOMIC_ACQUIRE);
    list_each(spec, window_entry, &w);
    int def = __atomic_load_n(&cfg->chat_context_window, __ATOMIC_RELAXED);
    return w.window > 0 && !w.bad ? w.window : def;
}

static int url_ok(const char *u)
{
    return u && (strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0);
}

ragd_rc chat_cfg_check(const ragd_cfg *cfg, ragd_err *err)
{
    if (!url_ok(cfg->chat_base_url))
        return ragd_err_set(err, RAGD_ERR_CONFIG, "chat.base_url \"%s\" must start with http:// "
                            "or https://", cfg->chat_base_url ? cfg->chat_base_url : "");
    if (cfg->chat_finetuned_base_url && cfg->chat_finetuned_base_url[0] &&
        !url_ok(cfg->chat_finetuned_base_url))
        return ragd_err_set(err, RAGD_ERR_CONFIG, "chat.finetuned_base_url \"%s\" must start with "
                            "http:// or https://", cfg->chat_finetuned_base_url);
    if (cfg->chat_use_finetuned &&
        (cfg->chat_finetuned_model == NULL || cfg->chat_finetuned_model[0] == '\0'))
        return ragd_err_set(err, RAGD_ERR_CONFIG, "chat.use_finetuned (USE_FINETUNED_MODEL) is on "
                            "but chat.finetuned_model is empty: name the fine-tuned model");
    window_find w = {0};
    list_each(cfg->chat_context_windows, window_entry, &w);
    if (w.bad)
        return ragd_err_set(err, RAGD_ERR_CONFIG, "chat.context_windows: each entry must be "
                            "model:tokens with tokens 256..10000000, comma-separated");
    if (cfg->chat_reserve_tokens >= cfg->chat_context_window)
        return ragd_err_set(err, RAGD_ERR_CONFIG, "chat.reserve_tokens (%d) must be below "
                            "chat.context_window (%d)", cfg->chat_reserve_tokens,
                            cfg->chat_context_window);
    return RAGD_OK;
}

void chat_route_pick(const ragd_cfg *cfg, const char *intent, const char *caller_model,
                     chat_route *out)
{
    memset(out, 0, sizeof *out);
    /* Live keys: each string is loaded once; SIGHUP retires (never frees) old values. */
    const char *base = __atomic_load_n(&cfg->chat_base_url, __ATOMIC_ACQUIRE);
    const char *model = __atomic_load_n(&cfg->chat_model, __ATOMIC_ACQUIRE);
    const char *ft_model = __atomic_load_n(&cfg->chat_finetuned_model, __ATOMIC_ACQUIRE);
    const char *ft_base = __atomic_load_n(&cfg->chat_finetuned_base_url, __ATOMIC_ACQUIRE);
    const char *ft_intents = __atomic_load_n(&cfg->chat_finetuned_intents, __ATOMIC_ACQUIRE);
    int use_ft = __atomic_load_n(&cfg->chat_use_finetuned, __ATOMIC_RELAXED);
    if (use_ft && ft_model && ft_model[0] && chat_list_has(ft_intents, intent)) {
        out->finetuned = 1;
        model = ft_model;
        if (ft_base && ft_base[0]) base = ft_base;
    }
    if (caller_model && caller_model[0] &&
        __atomic_load_n(&cfg->chat_allow_caller_model, __ATOMIC_RELAXED))
        model = caller_model;
    snprintf(out->model, sizeof out->model, "%s", model ? model : "");
    snprintf(out->base_url, sizeof out->base_url, "%s", base ? base : "");
    out->window = chat_window_for(cfg, out->model);
}

/* ---- tokens ------------------------------------------------------------------------------- */

static int text_tokens(const char *s)
{
    return s ? (int)ingest_tokens_count(s, strlen(s)) : 0;
}

/* Returns: the text of a message's content: a string, or the text parts of an array. Appends to
 * b. Returns: 0 or -1. */
static int content_text(json_t *content, util_buf *b)
{
    if (json_is_string(content))
        return util_buf_append(b, json_string_value(content), json_string_length(content));
    size_t i;
    json_t *part;
    int bad = 0;
    json_array_foreach(content, i, part) {
        const char *t = json_string_value(json_object_get(part, "text"));
        if (t) bad |= util_buf_printf(b, "%s%s", b->len ? "\n" : "", t);
    }
    return bad;
}

int chat_message_tokens(json_t *message)
{
    util_buf b = {0};
    content_text(json_object_get(message, "content"), &b);
    int tokens = MESSAGE_OVERHEAD_TOKENS + text_tokens(b.data);
    util_buf_free(&b);
    json_t *calls = json_object_get(message, "tool_calls");
    json_t *fc = json_object_get(message, "function_call");
    if (calls || fc) {
        char *t = json_dumps(calls ? calls : fc, JSON_COMPACT);
        tokens += text_tokens(t);
        free(t);
    }
    tokens += text_tokens(json_string_value(json_object_get(message, "name")));
    return tokens;
}

/* ---- request ------------------------------------------------------------------------------ */

static ragd_rc invalid(ragd_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static ragd_rc invalid(ragd_err *err, const char *fmt, ...)
{
    char msg[RAGD_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ragd_err_set(err, RAGD_ERR_INVALID, "%s", msg);
}

/* Returns: 1 when a request's tool entry is valid: {"type": "function", "function": {"name"}};
 * *name gets the name (borrowed). */
static int tool_name(json_t *tool, const char **name)
{
    json_t *fn = json_object_get(tool, "function");
    const char *type = json_string_value(json_object_get(tool, "type"));
    *name = json_string_value(json_object_get(fn, "name"));
    return json_is_object(tool) && type && strcmp(type, "function") == 0 && *name && (*name)[0];
}

static ragd_rc messages_check(json_t *messages, size_t *last_user, ragd_err *err)
{
    static const char *const roles[] = {"system", "developer", "user", "assistant", "tool",
                                        "function", NULL};
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return invalid(err, "field '%s' must be a non-empty array of messages", "messages");
    size_t i;
    json_t *m;
    int have_user = 0;
    json_array_foreach(messages, i, m) {
        char where[64];
        snprintf(where, sizeof where, "messages[%zu]", i);
        if (!json_is_object(m)) return invalid(err, "field '%s' must be an object", where);
        const char *role = json_string_value(json_object_get(m, "role"));
        int known = 0;
        for (size_t r = 0; role && roles[r] && !known; r++) known = strcmp(role, roles[r]) == 0;
        if (!known)
            return ragd_err_set(err, RAGD_ERR_INVALID, "field '%s.role' must be one of system, "
                                "developer, user, assistant, tool", where);
        json_t *c = json_object_get(m, "content");
        if (c != NULL && !json_is_string(c) && !json_is_array(c) && !json_is_null(c))
            return ragd_err_set(err, RAGD_ERR_INVALID, "field '%s.content' must be a string, an "
                                "array of content parts or null", where);
        if (json_is_array(c)) {
            size_t j;
            json_t *part;
            json_array_foreach(c, j, part) {
                if (!json_is_object(part) || !json_is_string(json_object_get(part, "type")))
                    return ragd_err_set(err, RAGD_ERR_INVALID, "field '%s.content[%zu]' must be "
                                        "a content part {\"type\": ...}", where, j);
            }
        }
        if (strcmp(role, "user") == 0) {
            if (c == NULL || json_is_null(c))
                return ragd_err_set(err, RAGD_ERR_INVALID, "field '%s.content' is required for "
                                    "a user message", where);
            have_user = 1;
            *last_user = i;
        }
    }
    if (!have_user)
        return invalid(err, "field '%s' must contain at least one user message", "messages");
    return RAGD_OK;
}

/* Takes an optional string field out of root. Returns: RAGD_OK and *out (new copy or NULL). */
static ragd_rc take_string(json_t *root, const char *field, size_t max, char **out,
                           ragd_err *err)
{
    *out = NULL;
    json_t *v = json_object_get(root, field);
    if (v == NULL || json_is_null(v)) {
        json_object_del(root, field);
        return RAGD_OK;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max)
        return ragd_err_set(err, RAGD_ERR_INVALID, "field '%s' must be a string of 1..%zu "
                            "bytes", field, max);
    *out = strdup(json_string_value(v));
    if (*out == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    json_object_del(root, field);
    return RAGD_OK;
}

/* Parses the ragd-specific filters: OpenAI-style ({"type": ...}) or {"source", "tags"}. */
static ragd_rc filters_parse(chat_request *r, ragd_err *err)
{
    json_t *v = r->filters;
    if (v == NULL || json_is_null(v)) return RAGD_OK;
    if (!json_is_object(v)) return invalid(err, "field '%s' must be an object", "filters");
    if (json_object_get(v, "type") != NULL)
        return retrieve_filter_parse(v, "filters", &r->filter, err);
    const char *key;
    json_t *value;
    json_object_foreach(v, key, value) {
        if (strcmp(key, "source") == 0) {
            if (!json_is_string(value))
                return invalid(err, "field '%s' must be a string (a source prefix)",
                               "filters.source");
            r->source_prefix = json_string_value(value);
        } else if (strcmp(key, "tags") == 0) {
            if (!json_is_array(value) || json_array_size(value) > 32)
                return invalid(err, "field '%s' must be an array of at most 32 strings",
                               "filters.tags");
            size_t i;
            json_t *t;
            json_array_foreach(value, i, t) {
                if (!json_is_string(t))
                    return invalid(err, "field '%s' must be an array of strings",
                                   "filters.tags");
                r->tags[r->tag_count++] = json_string_value(t);
            }
        } else {
            return ragd_err_set(err, RAGD_ERR_INVALID, "unknown field '%.64s' in 'filters'; "
                                "known fields: source, tags (or an OpenAI-style filter with "
                                "\"type\")", key);
        }
    }
    return RAGD_OK;
}

ragd_rc chat_request_parse(const ragd_cfg *cfg, const char *body, size_t len,
                           const char *header_intent, const char *header_collection,
                           chat_request *out, const char **code, ragd_err *err)
{
    *code = "invalid_request";
    memset(out, 0, sizeof *out);
    if (body == NULL || len == 0) {
        *code = "invalid_json";
        return ragd_err_set(err, RAGD_ERR_INVALID, "request body is empty; expected a JSON "
                            "object");
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        *code = "invalid_json";
        return ragd_err_set(err, RAGD_ERR_INVALID, "malformed JSON at line %d column %d: %s",
                            jerr.line, jerr.column, jerr.text);
    }
    chat_request r = {.root = root};
    ragd_rc rc = RAGD_OK;
    if (!json_is_object(root)) {
        rc = ragd_err_set(err, RAGD_ERR_INVALID, "request body must be a JSON object");
        goto fail;
    }
    r.messages = json_object_get(root, "messages");
    if ((rc = messages_check(r.messages, &r.last_user, err)) != RAGD_OK) goto fail;
    json_t *v = json_object_get(root, "model");
    if (v != NULL && !json_is_string(v)) {
        rc = invalid(err, "field '%s' must be a string", "model");
        goto fail;
    }
    if (v != NULL && (r.caller_model = strdup(json_string_value(v))) == NULL) {
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        goto fail;
    }
    v = json_object_get(root, "stream");
    if (v != NULL && !json_is_boolean(v) && !json_is_null(v)) {
        rc = invalid(err, "field '%s' must be true or false", "stream");
        goto fail;
    }
    r.stream = json_is_true(v);
    v = json_object_get(root, "stream_options");
    if (v != NULL && !json_is_null(v) && !json_is_object(v)) {
        rc = invalid(err, "field '%s' must be an object", "stream_options");
        goto fail;
    }
    r.usage_asked = json_is_true(json_object_get(v, "include_usage"));
    static const char *const max_fields[] = {"max_tokens", "max_completion_tokens"};
    for (size_t i = 0; i < 2; i++) {
        v = json_object_get(root, max_fields[i]);
        if (v == NULL || json_is_null(v)) continue;
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > 10000000) {
            rc = invalid(err, "field '%s' must be a positive integer", max_fields[i]);
            goto fail;
        }
        if ((int)json_integer_value(v) > r.max_tokens) r.max_tokens = (int)json_integer_value(v);
    }
    v = json_object_get(root, "tools");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_array(v)) {
            rc = invalid(err, "field '%s' must be an array", "tools");
            goto fail;
        }
        const char *whitelist = __atomic_load_n(&cfg->prompt_tools, __ATOMIC_ACQUIRE);
        size_t i;
        json_t *t;
        json_array_foreach(v, i, t) {
            const char *name = NULL;
            if (!tool_name(t, &name)) {
                rc = ragd_err_set(err, RAGD_ERR_INVALID, "field 'tools[%zu]' must be {\"type\": "
                                  "\"function\", \"function\": {\"name\": ...}}", i);
                goto fail;
            }
            if (!chat_list_has(whitelist, name)) {
                *code = "tool_not_allowed";
                rc = ragd_err_set(err, RAGD_ERR_INVALID, "tools[%zu]: tool '%.64s' is not on the "
                                  "whitelist ([prompt] tools: %s)", i, name,
                                  whitelist && whitelist[0] ? whitelist : "none");
                goto fail;
            }
        }
        r.tools_offered = json_array_size(v) > 0;
    }
    v = json_object_get(root, "functions"); /* the legacy form of tools */
    if (v != NULL && !json_is_null(v)) {
        const char *whitelist = __atomic_load_n(&cfg->prompt_tools, __ATOMIC_ACQUIRE);
        size_t i;
        json_t *f;
        if (!json_is_array(v)) {
            rc = invalid(err, "field '%s' must be an array", "functions");
            goto fail;
        }
        json_array_foreach(v, i, f) {
            const char *name = json_string_value(json_object_get(f, "name"));
            if (!chat_list_has(whitelist, name)) {
                *code = "tool_not_allowed";
                rc = ragd_err_set(err, RAGD_ERR_INVALID, "functions[%zu]: function '%.64s' is not "
                                  "on the whitelist ([prompt] tools)", i, name ? name : "");
                goto fail;
            }
        }
    }
    if ((rc = take_string(root, "intent", INTENT_MAX, &r.intent, err)) != RAGD_OK) goto fail;
    if ((rc = take_string(root, "collection", 256, &r.collection, err)) != RAGD_OK) goto fail;
    if (r.intent == NULL && header_intent && header_intent[0]) {
        if (strlen(header_intent) > INTENT_MAX) {
            rc = invalid(err, "header '%s' must be at most 64 bytes", "X-Ragd-Intent");
            goto fail;
        }
        r.intent = strdup(header_intent);
    }
    if (r.collection == NULL && header_collection && header_collection[0])
        r.collection = strndup(header_collection, 256);
    if (r.collection != NULL && !engine_collection_valid(r.collection)) {
        rc = ragd_err_set(err, RAGD_ERR_INVALID, "field 'collection' (or X-Ragd-Collection): a "
                          "collection name is 1..64 ASCII letters, digits, '_', '-' or '.', not "
                          "starting with '.'");
        goto fail;
    }
    r.filters = json_incref(json_object_get(root, "filters"));
    json_object_del(root, "filters");
    if ((rc = filters_parse(&r, err)) != RAGD_OK) goto fail;
    *out = r;
    return RAGD_OK;
fail:
    chat_request_free(&r);
    return rc;
}

void chat_request_free(chat_request *r)
{
    if (r == NULL) return;
    json_decref(r->root);
    json_decref(r->filters);
    retrieve_filter_free(r->filter);
    free(r->intent);
    free(r->collection);
    free(r->caller_model);
    memset(r, 0, sizeof *r);
}

/* ---- the retrieval query ------------------------------------------------------------------ */

static const char *role_of(json_t *m)
{
    const char *r = json_string_value(json_object_get(m, "role"));
    return r ? r : "";
}

char *chat_query_build(const ragd_cfg *cfg, json_t *messages, size_t last_user, int *turns_used)
{
    *turns_used = 0;
    util_buf last = {0};
    if (content_text(json_object_get(json_array_get(messages, last_user), "content"), &last) != 0)
        return NULL;
    retrieve_terms terms = {0};
    size_t nterms = 0;
    if (retrieve_terms_split(last.data ? last.data : "", last.len, &terms, NULL) == RAGD_OK)
        nterms = terms.count;
    retrieve_terms_free(&terms);
    int followup_terms = __atomic_load_n(&cfg->chat_followup_terms, __ATOMIC_RELAXED);
    int want = __atomic_load_n(&cfg->chat_history_query_turns, __ATOMIC_RELAXED);
    util_buf q = {0};
    int bad = 0;
    if ((int)nterms < followup_terms && want > 0) {
        /* A short follow-up ("and for EU customers?") means little alone: search it together
         * with the user's previous turns, oldest first. */
        size_t idx[16];
        int found = 0;
        for (size_t i = last_user; i-- > 0 && found < want && found < 16;)
            if (strcmp(role_of(json_array_get(messages, i)), "user") == 0) idx[found++] = i;
        for (int k = found - 1; k >= 0; k--) {
            util_buf t = {0};
            bad |= content_text(json_object_get(json_array_get(messages, idx[k]), "content"), &t);
            if (t.len > 0) {
                bad |= util_buf_printf(&q, "%s%s", q.len ? " " : "", t.data);
                (*turns_used)++;
            }
            util_buf_free(&t);
        }
    }
    if (last.len > 0) bad |= util_buf_printf(&q, "%s%s", q.len ? " " : "", last.data);
    util_buf_free(&last);
    if (bad) {
        util_buf_free(&q);
        return NULL;
    }
    /* Keep the end (the user's turn) when the history makes the query too long. */
    if (q.len > QUERY_MAX_BYTES) {
        size_t cut = q.len - QUERY_MAX_BYTES;
        while (cut < q.len && ((unsigned char)q.data[cut] & 0xC0) == 0x80) cut++;
        char *tail = strdup(q.data + cut);
        util_buf_free(&q);
        return tail;
    }
    return util_buf_steal(&q);
}

/* ---- budget ------------------------------------------------------------------------------- */

void chat_budget_plan(int available, int fixed, const int *history, size_t nhistory,
                      int context_tokens, int min_context, chat_budget *out)
{
    memset(out, 0, sizeof *out);
    out->available = available;
    out->fixed = fixed;
    out->context_before = context_tokens;
    int hist = 0;
    for (size_t i = 0; i < nhistory; i++) hist += history[i];
    if (fixed + hist + context_tokens <= available) {
        out->context_budget = context_tokens;
        return;
    }
    int floor = context_tokens < min_context ? context_tokens : min_context;
    int room = available - fixed - hist;
    if (room >= floor) { /* cutting the context alone is enough */
        out->context_budget = room;
        return;
    }
    /* Drop history oldest first until the context's floor fits beside what is left. */
    size_t dropped = 0;
    while (dropped < nhistory && fixed + hist + floor > available) {
        hist -= history[dropped];
        out->history_tokens_dropped += history[dropped];
        dropped++;
    }
    out->history_dropped = dropped;
    room = available - fixed - hist;
    if (room < 0) {
        out->over = fixed > available;
        room = 0;
    }
    out->context_budget = room < context_tokens ? room : context_tokens;
}

/* ---- guards ------------------------------------------------------------------------------- */

int chat_tool_calls_filter(json_t *message, const char *whitelist)
{
    if (!json_is_object(message)) return 0;
    int removed = 0;
    json_t *calls = json_object_get(message, "tool_calls");
    if (json_is_array(calls)) {
        for (size_t i = json_array_size(calls); i-- > 0;) {
            json_t *c = json_array_get(calls, i);
            const char *name =
                json_string_value(json_object_get(json_object_get(c, "function"), "name"));
            if (!chat_list_has(whitelist, name)) {
                json_array_remove(calls, i);
                removed++;
            }
        }
        if (json_array_size(calls) == 0) json_object_del(message, "tool_calls");
    }
    json_t *fc = json_object_get(message, "function_call");
    if (fc && !json_is_null(fc) &&
        !chat_list_has(whitelist, json_string_value(json_object_get(fc, "name")))) {
        json_object_del(message, "function_call");
        removed++;
    }
    return removed;
}

int chat_tool_delta_filter(json_t *delta, const char *whitelist, chat_tool_stream *st)
{
    int blocked = 0;
    json_t *calls = json_object_get(delta, "tool_calls");
    if (json_is_array(calls)) {
        for (size_t i = json_array_size(calls); i-- > 0;) {
            json_t *c = json_array_get(calls, i);
            json_int_t idx = json_integer_value(json_object_get(c, "index"));
            if (!json_is_integer(json_object_get(c, "index"))) idx = (json_int_t)i;
            if (idx < 0 || idx >= CHAT_STREAM_TOOLS_MAX) { /* beyond what we track: refuse */
                json_array_remove(calls, i);
                continue;
            }
            if (st->map[idx] == 0) {
                const char *name =
                    json_string_value(json_object_get(json_object_get(c, "function"), "name"));
                if (chat_list_has(whitelist, name)) {
                    st->map[idx] = ++st->next;
                } else {
                    st->map[idx] = -1;
                    st->blocked++;
                    blocked++;
                }
            }
            if (st->map[idx] < 0) json_array_remove(calls, i);
            else json_object_set_new(c, "index", json_integer(st->map[idx] - 1));
        }
        if (json_array_size(calls) == 0) json_object_del(delta, "tool_calls");
    }
    json_t *fc = json_object_get(delta, "function_call");
    if (fc && !json_is_null(fc)) {
        /* legacy function_call: tracked in the slot past the tool calls' */
        int *slot = &st->map[CHAT_STREAM_TOOLS_MAX - 1];
        if (*slot == 0) {
            const char *name = json_string_value(json_object_get(fc, "name"));
            *slot = chat_list_has(whitelist, name) ? 1 : -1;
            if (*slot < 0) {
                st->blocked++;
                blocked++;
            }
        }
        if (*slot < 0) json_object_del(delta, "function_call");
    }
    return blocked;
}

uint64_t chat_cited_tags(const char *text, size_t count)
{
    uint64_t set = 0;
    for (const char *p = text ? strchr(text, '[') : NULL; p; p = strchr(p + 1, '[')) {
        const char *q = p + 1;
        unsigned long n = 0;
        int digits = 0;
        while (isdigit((unsigned char)*q) && digits < 4) n = n * 10 + (unsigned long)(*q++ - '0'),
                                                         digits++;
        if (digits > 0 && *q == ']' && n >= 1 && n <= count && n <= 64) set |= 1ull << (n - 1);
    }
    return set;
}

int chat_has_sources_section(const char *text)
{
    for (const char *line = text; line && *line; line = strchr(line, '\n')) {
        if (*line == '\n') line++;
        while (*line == '#' || *line == '*' || *line == ' ' || *line == '_') line++;
        if (strncasecmp(line, "sources", 7) == 0 || strncasecmp(line, "source:", 7) == 0)
            return 1;
    }
    return 0;
}

/* ---- the plan ----------------------------------------------------------------------------- */

/* A history unit: a message and the tool results that answer its tool calls (dropped together,
 * so the upstream never gets a tool result without its call). */
typedef struct unit {
    size_t first, count;
    int tokens;
} unit;

static int is_fixed(json_t *m, size_t i, size_t last_user)
{
    const char *role = role_of(m);
    return i >= last_user || strcmp(role, "system") == 0 || strcmp(role, "developer") == 0;
}

/* Rebuilds the answer's context within budget tokens (whole sentences, as /context does). */
static ragd_rc context_cut(const ragd_cfg *cfg, engine_answer *a, int budget, ragd_err *err)
{
    if (budget >= a->context.tokens) return RAGD_OK;
    retrieve_context cut = {0};
    if (budget >= 16) {
        const store_hit **hits = calloc(a->count ? a->count : 1, sizeof *hits);
        if (hits == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < a->count; i++) hits[i] = &a->results[i].hit;
        int merge = __atomic_load_n(&cfg->retrieve_merge_adjacent, __ATOMIC_RELAXED);
        ragd_rc rc = retrieve_context_build(hits, a->count, budget, merge, &cut, err);
        free(hits);
        if (rc != RAGD_OK) return rc;
    } else {
        cut.text = strdup("");
        cut.result_n = calloc(a->count ? a->count : 1, sizeof *cut.result_n);
        if (cut.text == NULL || cut.result_n == NULL) {
            retrieve_context_free(&cut);
            return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        }
    }
    retrieve_context_free(&a->context);
    a->context = cut;
    return RAGD_OK;
}

/* Returns: the system message ragd puts first; new string (free()), or NULL with err set. */
static char *system_prompt(const ragd_cfg *cfg, const chat_plan *p, ragd_err *err)
{
    engine_query q = {.query = p->query ? p->query : "", .query_len = p->query ? strlen(p->query)
                                                                               : 0};
    engine_answer none = {0};
    none.retrieved = 0;
    none.low_confidence = 1;
    none.clarify = p->clarify;
    const engine_answer *a = p->have_answer ? &p->answer : &none;
    return http_prompt_build(cfg, &q, a, err);
}

ragd_rc chat_plan_build(engine *e, const ragd_cfg *cfg, chat_request *req, chat_plan *out,
                        ragd_err *err)
{
    chat_plan p = {0};
    ragd_rc rc = RAGD_OK;
    char *prompt = NULL;
    unit *units = NULL;
    int *unit_tokens = NULL;
    json_t *root = req->root;
    req->root = NULL;
    json_t *messages = req->messages;

    const char *def_intent = __atomic_load_n(&cfg->chat_default_intent, __ATOMIC_ACQUIRE);
    p.intent = strdup(req->intent ? req->intent : def_intent ? def_intent : "general_chat");
    p.collection = req->collection;
    req->collection = NULL;
    p.rag_enabled = __atomic_load_n(&cfg->rag_enabled, __ATOMIC_RELAXED);
    p.tools = __atomic_load_n(&cfg->prompt_tools, __ATOMIC_ACQUIRE);
    p.append_sources = __atomic_load_n(&cfg->chat_append_sources, __ATOMIC_RELAXED);
    p.stream = req->stream;
    p.usage_asked = req->usage_asked;
    if (p.intent == NULL) {
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        goto out;
    }
    chat_route_pick(cfg, p.intent, req->caller_model, &p.route);
    json_object_set_new(root, "model", json_string(p.route.model));

    if (!p.rag_enabled) { /* RAG_ENABLED=false: the turn goes upstream untouched */
        p.upstream = root;
        root = NULL;
        goto out;
    }
    retrieve_intent intent = {0};
    const char *spec = __atomic_load_n(&cfg->intent_retrieve, __ATOMIC_ACQUIRE);
    if (retrieve_intent_find(spec, p.intent, &intent, NULL) == RAGD_OK && intent.retrieves) {
        p.query = chat_query_build(cfg, messages, req->last_user, &p.query_turns);
        if (p.query == NULL) {
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
            goto out;
        }
        if (p.query[strspn(p.query, " \t\r\n")] != '\0') {
            engine_query q = {.query = p.query,
                              .query_len = strlen(p.query),
                              .k = __atomic_load_n(&cfg->retrieve_default_k, __ATOMIC_RELAXED),
                              .min_score = cfg->retrieve_min_score,
                              .source_prefix = req->source_prefix,
                              .tags_all = req->tag_count ? req->tags : NULL,
                              .tag_count = req->tag_count,
                              .filter = req->filter,
                              .intent = p.intent,
                              .collection = p.collection};
            double t0 = util_now_ms();
            rc = engine_retrieve(e, &q, &p.answer, err);
            p.retrieve_ms = util_now_ms() - t0;
            log_retrieval rec = {.query = q.query, .query_len = q.query_len, .intent = p.intent,
                                 .k = q.k, .rag_enabled = 1, .rc = rc,
                                 .error_message = rc == RAGD_OK ? NULL : err->msg,
                                 .cache_hit = -1, .cache_ms = -1};
            if (rc == RAGD_OK) {
                rec.results = p.answer.count;
                rec.low_confidence = p.answer.low_confidence;
                rec.top_score = p.answer.count ? p.answer.results[0].score : 0;
                rec.cache_hit = p.answer.cache_layer
                                    ? strcmp(p.answer.cache_layer, "miss") != 0 : -1;
                rec.cache_ms = p.answer.cache_layer ? p.answer.cache_ms : -1;
                rec.embed_ms = p.answer.embed_ms;
                rec.search_ms = p.answer.search_ms;
                rec.fetch_ms = p.answer.fetch_ms;
                rec.total_ms = p.answer.total_ms;
            }
            log_record_retrieval(&rec, __atomic_load_n(&cfg->log_queries, __ATOMIC_RELAXED));
            if (rc != RAGD_OK) goto out;
            p.have_answer = 1;
            p.retrieved = p.answer.retrieved;
            p.low_confidence = p.answer.retrieved && p.answer.low_confidence;
            if (p.answer.clarify) p.clarify = strdup(p.answer.clarify);
        }
    }
    if (p.low_confidence) {
        const char *mode = __atomic_load_n(&cfg->chat_on_low_confidence, __ATOMIC_ACQUIRE);
        if (p.clarify == NULL)
            p.clarify = strdup("I couldn't find this in the team's documents. Could you tell me "
                               "more about what you need?");
        if (mode == NULL || strcmp(mode, "pass") != 0) {
            p.ask = 1;
            goto out;
        }
    }

    /* The budget: the window minus the answer's reserve. */
    int reserve = __atomic_load_n(&cfg->chat_reserve_tokens, __ATOMIC_RELAXED);
    if (req->max_tokens > reserve) reserve = req->max_tokens;
    int available = p.route.window - reserve;
    int fixed = 0;
    size_t n = json_array_size(messages), nunits = 0;
    units = calloc(n ? n : 1, sizeof *units);
    unit_tokens = calloc(n ? n : 1, sizeof *unit_tokens);
    if (units == NULL || unit_tokens == NULL) {
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(messages, i);
        int t = chat_message_tokens(m);
        if (is_fixed(m, i, req->last_user)) {
            fixed += t;
            continue;
        }
        const char *role = role_of(m);
        int joins = (strcmp(role, "tool") == 0 || strcmp(role, "function") == 0) && nunits > 0 &&
                    units[nunits - 1].first + units[nunits - 1].count == i;
        if (!joins) units[nunits++] = (unit){.first = i};
        units[nunits - 1].count++;
        units[nunits - 1].tokens += t;
    }
    for (size_t u = 0; u < nunits; u++) unit_tokens[u] = units[u].tokens;
    json_t *tools = json_object_get(root, "tools");
    if (tools) {
        char *t = json_dumps(tools, JSON_COMPACT);
        fixed += text_tokens(t);
        free(t);
    }
    int context_tokens = p.have_answer && p.retrieved && !p.low_confidence
                             ? p.answer.context.tokens : 0;
    if ((prompt = system_prompt(cfg, &p, err)) == NULL) {
        rc = err ? err->rc : RAGD_ERR_INTERNAL;
        goto out;
    }
    fixed += text_tokens(prompt) - context_tokens + MESSAGE_OVERHEAD_TOKENS;
    int min_context = __atomic_load_n(&cfg->chat_min_context_tokens, __ATOMIC_RELAXED);
    chat_budget_plan(available, fixed, unit_tokens, nunits, context_tokens, min_context,
                     &p.budget);
    if (context_tokens > 0 && p.budget.context_budget < context_tokens) {
        if ((rc = context_cut(cfg, &p.answer, p.budget.context_budget, err)) != RAGD_OK) goto out;
        free(prompt);
        if ((prompt = system_prompt(cfg, &p, err)) == NULL) {
            rc = err ? err->rc : RAGD_ERR_INTERNAL;
            goto out;
        }
    }
    if (p.budget.over)
        RAGD_LOG(RAGD_LOG_WARN, "chat", "turn over budget: system prompt and last turn take %d "
                 "tokens of %d available (model %s); sent anyway", fixed, available,
                 p.route.model);

    /* The messages sent: ragd's system prompt, then the caller's, minus dropped history. */
    json_t *sent = json_array();
    if (sent == NULL) {
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        goto out;
    }
    json_array_append_new(sent, json_pack("{s:s, s:s}", "role", "system", "content", prompt));
    size_t skip_until = p.budget.history_dropped > 0
                            ? units[p.budget.history_dropped - 1].first +
                                  units[p.budget.history_dropped - 1].count
                            : 0;
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(messages, i);
        if (i < skip_until && !is_fixed(m, i, req->last_user)) continue;
        json_array_append(sent, m);
    }
    p.prompt_estimate = text_tokens(prompt) + MESSAGE_OVERHEAD_TOKENS;
    for (size_t i = 1; i < json_array_size(sent); i++)
        p.prompt_estimate += chat_message_tokens(json_array_get(sent, i));
    json_object_set_new(root, "messages", sent);
    p.upstream = root;
    root = NULL;
out:
    free(prompt);
    free(units);
    free(unit_tokens);
    json_decref(root);
    if (rc != RAGD_OK) {
        chat_plan_free(&p);
        return rc;
    }
    *out = p;
    return RAGD_OK;
}

void chat_plan_free(chat_plan *p)
{
    if (p == NULL) return;
    free(p->intent);
    free(p->collection);
    free(p->clarify);
    free(p->query);
    if (p->have_answer) engine_answer_free(&p->answer);
    json_decref(p->upstream);
    memset(p, 0, sizeof *p);
}

/* ---- the answer --------------------------------------------------------------------------- */

static size_t source_count(const chat_plan *p)
{
    return p->have_answer && p->retrieved && !p->low_confidence ? p->answer.context.source_count
                                                                : 0;
}

json_t *chat_plan_json(const chat_plan *p, uint64_t cited, int blocked, int sources_appended)
{
    json_t *sources = json_array();
    for (size_t i = 0; i < source_count(p); i++) {
        const retrieve_source *s = &p->answer.context.sources[i];
        int n = s->n;
        json_array_append_new(
            sources, json_pack("{s:i, s:s, s:s, s:s, s:o, s:b}", "n", n, "title", s->hit->title,
                               "source", s->hit->source, "heading", s->heading, "page",
                               s->page > 0 ? json_integer(s->page) : json_null(), "cited",
                               n >= 1 && n <= 64 && (cited >> (n - 1)) & 1));
    }
    const chat_budget *b = &p->budget;
    int context_dropped = b->context_before > p->answer.context.tokens && p->have_answer
                              ? b->context_before - p->answer.context.tokens : 0;
    json_t *o = json_pack(
        "{s:s, s:b, s:b, s:b, s:o, s:i, s:o, s:s, s:b, s:i, s:{s:i, s:I, s:i}, s:i, s:b, s:i, "
        "s:b, s:b, s:i}",
        "intent", p->intent ? p->intent : "", "rag_enabled", p->rag_enabled, "retrieved",
        p->retrieved, "low_confidence", p->low_confidence, "query",
        p->query ? json_string(p->query) : json_null(), "query_history_turns", p->query_turns,
        "sources", sources, "model", p->route.model, "finetuned", p->route.finetuned,
        "tokens_dropped", b->history_tokens_dropped + context_dropped, "dropped",
        "history_tokens", b->history_tokens_dropped, "history_messages",
        (json_int_t)b->history_dropped, "context_tokens", context_dropped, "window",
        p->route.window, "over_budget", b->over, "prompt_tokens_estimate", p->prompt_estimate,
        "upstream_called", !p->ask, "sources_appended", sources_appended, "tool_calls_blocked",
        blocked);
    if (o && p->clarify && p->low_confidence)
        json_object_set_new(o, "clarifying_question", json_string(p->clarify));
    if (o && p->have_answer)
        json_object_set_new(o, "context_tokens", json_integer(p->answer.context.tokens));
    if (o && p->collection) json_object_set_new(o, "collection", json_string(p->collection));
    return o;
}

char *chat_sources_text(const chat_plan *p, uint64_t cited)
{
    util_buf b = {0};
    int bad = 0;
    for (size_t i = 0; i < source_count(p); i++) {
        const retrieve_source *s = &p->answer.context.sources[i];
        if (s->n < 1 || s->n > 64 || !((cited >> (s->n - 1)) & 1)) continue;
        if (b.len == 0) bad |= util_buf_puts(&b, "\n\nSources:");
        const char *title = s->hit->title && s->hit->title[0] ? s->hit->title : s->hit->source;
        bad |= util_buf_printf(&b, "\n[%d] %s", s->n, title);
        if (s->heading && s->heading[0] && strcmp(s->heading, title) != 0)
            bad |= util_buf_printf(&b, " > %s", s->heading);
        if (strcmp(title, s->hit->source) != 0) bad |= util_buf_printf(&b, " - %s", s->hit->source);
        if (s->page > 0) bad |= util_buf_printf(&b, ", p. %d", s->page);
    }
    if (bad) {
        util_buf_free(&b);
        return NULL;
    }
    return util_buf_steal(&b);
}

int chat_completion_finish(chat_plan *p, json_t *completion)
{
    int blocked = 0, appended = 0;
    uint64_t cited_all = 0;
    size_t i;
    json_t *choice;
    json_array_foreach(json_object_get(completion, "choices"), i, choice) {
        json_t *msg = json_object_get(choice, "message");
        int had_calls = json_object_get(msg, "tool_calls") != NULL ||
                        json_object_get(msg, "function_call") != NULL;
        blocked += chat_tool_calls_filter(msg, p->tools);
        const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
        if (had_calls && json_object_get(msg, "tool_calls") == NULL &&
            json_object_get(msg, "function_call") == NULL && finish &&
            (strcmp(finish, "tool_calls") == 0 || strcmp(finish, "function_call") == 0))
            json_object_set_new(choice, "finish_reason", json_string("stop"));
        const char *text = json_string_value(json_object_get(msg, "content"));
        uint64_t cited = chat_cited_tags(text, source_count(p));
        cited_all |= cited;
        if (cited && p->append_sources && !chat_has_sources_section(text)) {
            char *section = chat_sources_text(p, cited);
            if (section && section[0]) {
                util_buf b = {0};
                if (util_buf_printf(&b, "%s%s", text, section) == 0) {
                    json_object_set_new(msg, "content", json_string(b.data));
                    appended = 1;
                }
                util_buf_free(&b);
            }
            free(section);
        }
    }
    json_object_set_new(completion, "ragd", chat_plan_json(p, cited_all, blocked, appended));
    return blocked;
}

/* Writes a chat.completion id "chatcmpl-ragd-<16 hex>" into out. */
static void completion_id(char out[48])
{
    char rid[RAGD_REQUEST_ID_MAX];
    log_record_request_id_new(rid);
    snprintf(out, 48, "chatcmpl-ragd-%.16s", rid);
}

json_t *chat_clarify_completion(const chat_plan *p)
{
    char id[48];
    completion_id(id);
    json_t *o = json_pack(
        "{s:s, s:s, s:I, s:s, s:[{s:i, s:{s:s, s:s, s:n}, s:n, s:s}], s:{s:i, s:i, s:i}}", "id",
        id, "object", "chat.completion", "created", (json_int_t)util_unix_time(), "model",
        p->route.model, "choices", "index", 0, "message", "role", "assistant", "content",
        p->clarify ? p->clarify : "", "refusal", "logprobs", "finish_reason", "stop", "usage",
        "prompt_tokens", 0, "completion_tokens", 0, "total_tokens", 0);
    if (o) json_object_set_new(o, "ragd", chat_plan_json(p, 0, 0, 0));
    return o;
}

/* ---- streamed answers --------------------------------------------------------------------- */

static int sse_append(util_buf *out, json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT);
    int bad = text == NULL || util_buf_printf(out, "data: %s\n\n", text) != 0;
    free(text);
    return bad ? -1 : 0;
}

void chat_stream_init(chat_stream *s, chat_plan *plan)
{
    memset(s, 0, sizeof *s);
    s->plan = plan;
    s->held = json_array();
}

void chat_stream_free(chat_stream *s)
{
    if (s == NULL) return;
    for (size_t i = 0; i < CHAT_STREAM_CHOICES; i++) util_buf_free(&s->text[i]);
    json_decref(s->held);
    json_decref(s->last);
    memset(s, 0, sizeof *s);
}

int chat_stream_event(chat_stream *s, const char *data, size_t len, util_buf *out)
{
    while (len > 0 && isspace((unsigned char)data[len - 1])) len--;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        s->done = 1;
        return 0;
    }
    json_t *chunk = json_loadb(data, len, 0, NULL);
    if (!json_is_object(chunk)) {
        json_decref(chunk);
        json_t *e = json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message",
                              "the upstream sent a stream event that is not JSON", "type",
                              "upstream_error", "param", "code", "bad_upstream_reply");
        sse_append(out, e);
        json_decref(e);
        return -1;
    }
    if (json_object_get(chunk, "error")) { /* an error event mid-stream: passed on as is */
        int rc = sse_append(out, chunk);
        json_decref(chunk);
        return rc;
    }
    json_t *usage = json_object_get(chunk, "usage");
    if (json_is_object(usage)) {
        s->have_usage = 1;
        s->prompt_tokens = json_integer_value(json_object_get(usage, "prompt_tokens"));
        s->completion_tokens = json_integer_value(json_object_get(usage, "completion_tokens"));
    }
    int hold = 0;
    size_t i;
    json_t *choice;
    json_array_foreach(json_object_get(chunk, "choices"), i, choice) {
        json_int_t idx = json_integer_value(json_object_get(choice, "index"));
        if (idx < 0 || idx >= CHAT_STREAM_CHOICES) idx = 0;
        json_t *delta = json_object_get(choice, "delta");
        int blocked = chat_tool_delta_filter(delta, s->plan->tools, &s->tools[idx]);
        s->blocked += blocked;
        const char *text = json_string_value(json_object_get(delta, "content"));
        if (text) util_buf_puts(&s->text[idx], text);
        const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
        if (finish) {
            hold = 1;
            if (s->tools[idx].blocked > 0 && s->tools[idx].next == 0 &&
                (strcmp(finish, "tool_calls") == 0 || strcmp(finish, "function_call") == 0))
                json_object_set_new(choice, "finish_reason", json_string("stop"));
        }
    }
    if (json_array_size(json_object_get(chunk, "choices")) == 0 && json_is_object(usage))
        hold = 1;
    json_decref(s->last);
    s->last = json_incref(chunk);
    int rc = 0;
    if (hold) json_array_append(s->held, chunk);
    else rc = sse_append(out, chunk);
    json_decref(chunk);
    return rc;
}

/* Returns: a new chunk shaped like the upstream's (id, created, model) with the given choices. */
static json_t *chunk_like(const chat_stream *s, json_t *choices)
{
    json_t *o = json_object();
    const char *keys[] = {"id", "created", "model", "system_fingerprint"};
    for (size_t i = 0; i < 4; i++) {
        json_t *v = json_object_get(s->last, keys[i]);
        if (v) json_object_set(o, keys[i], v);
    }
    if (json_object_get(o, "model") == NULL)
        json_object_set_new(o, "model", json_string(s->plan->route.model));
    json_object_set_new(o, "object", json_string("chat.completion.chunk"));
    json_object_set_new(o, "choices", choices);
    return o;
}

int chat_stream_end(chat_stream *s, util_buf *out)
{
    chat_plan *p = s->plan;
    int bad = 0, appended = 0;
    uint64_t cited_all = 0;
    for (size_t c = 0; c < CHAT_STREAM_CHOICES; c++) {
        const char *text = s->text[c].data;
        if (text == NULL) continue;
        uint64_t cited = chat_cited_tags(text, source_count(p));
        cited_all |= cited;
        if (!cited || !p->append_sources || chat_has_sources_section(text)) continue;
        char *section = chat_sources_text(p, cited);
        if (section && section[0]) {
            json_t *o = chunk_like(s, json_pack("[{s:i, s:{s:s}, s:n, s:n}]", "index", (int)c,
                                                "delta", "content", section, "logprobs",
                                                "finish_reason"));
            bad |= o == NULL || sse_append(out, o) != 0;
            json_decref(o);
            appended = 1;
        }
        free(section);
    }
    json_t *ragd = chat_plan_json(p, cited_all, s->blocked, appended);
    if (ragd && s->have_usage)
        json_object_set_new(ragd, "usage",
                            json_pack("{s:I, s:I}", "prompt_tokens", (json_int_t)s->prompt_tokens,
                                      "completion_tokens", (json_int_t)s->completion_tokens));
    /* The usage chunk goes on only when the caller asked for it (ragd asks for its counts). */
    json_t *pass = json_array();
    size_t i;
    json_t *chunk;
    json_array_foreach(s->held, i, chunk) {
        int usage_only = json_array_size(json_object_get(chunk, "choices")) == 0 &&
                         json_is_object(json_object_get(chunk, "usage"));
        if (usage_only && !p->usage_asked) continue;
        if (!p->usage_asked) json_object_del(chunk, "usage");
        json_array_append(pass, chunk);
    }
    if (json_array_size(pass) == 0)
        json_array_append_new(pass, chunk_like(s, json_array()));
    json_array_foreach(pass, i, chunk) {
        if (i + 1 == json_array_size(pass)) json_object_set(chunk, "ragd", ragd);
        bad |= sse_append(out, chunk) != 0;
    }
    json_decref(pass);
    json_decref(ragd);
    bad |= util_buf_puts(out, "data: [DONE]\n\n") != 0;
    return bad ? -1 : 0;
}

int chat_clarify_stream(const chat_plan *p, util_buf *out)
{
    char id[48];
    completion_id(id);
    json_int_t created = (json_int_t)util_unix_time();
    json_t *a = json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:{s:s, s:s}, s:n, s:n}]}", "id", id,
                          "object", "chat.completion.chunk", "created", created, "model",
                          p->route.model, "choices", "index", 0, "delta", "role", "assistant",
                          "content", p->clarify ? p->clarify : "", "logprobs", "finish_reason");
    json_t *b = json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:{}, s:n, s:s}]}", "id", id, "object",
                          "chat.completion.chunk", "created", created, "model", p->route.model,
                          "choices", "index", 0, "delta", "logprobs", "finish_reason", "stop");
    if (b) json_object_set_new(b, "ragd", chat_plan_json(p, 0, 0, 0));
    if (b && p->usage_asked)
        json_object_set_new(b, "usage", json_pack("{s:i, s:i, s:i}", "prompt_tokens", 0,
                                                  "completion_tokens", 0, "total_tokens", 0));
    int bad = a == NULL || b == NULL || sse_append(out, a) || sse_append(out, b) ||
              util_buf_puts(out, "data: [DONE]\n\n");
    json_decref(a);
    json_decref(b);
    return bad ? -1 : 0;
}

/* ---- records ------------------------------------------------------------------------------ */

void chat_turn_record(const ragd_cfg *cfg, const chat_plan *p, const char *outcome,
                      long upstream_status, int64_t prompt_tokens, int64_t completion_tokens,
                      int blocked, double upstream_ms, double first_token_ms)
{
    double price_in, price_out;
    __atomic_load(&cfg->chat_price_prompt_per_million, &price_in, __ATOMIC_RELAXED);
    __atomic_load(&cfg->chat_price_completion_per_million, &price_out, __ATOMIC_RELAXED);
    double cost = ((double)prompt_tokens * price_in + (double)completion_tokens * price_out) /
                  1e6;
    metrics_counter_add(RAGD_METRIC_CHAT_TURNS, 1);
    if (!p->ask && strcmp(outcome, "cancelled") != 0)
        metrics_counter_add(RAGD_METRIC_CHAT_UPSTREAM_CALLS, 1);
    if (p->ask) metrics_counter_add(RAGD_METRIC_CHAT_CLARIFIED, 1);
    if (p->route.finetuned) metrics_counter_add(RAGD_METRIC_CHAT_FINETUNED_TURNS, 1);
    if (strcmp(outcome, "upstream_error") == 0)
        metrics_counter_add(RAGD_METRIC_CHAT_UPSTREAM_ERRORS, 1);
    if (blocked > 0) metrics_counter_add(RAGD_METRIC_CHAT_TOOL_CALLS_BLOCKED, (uint64_t)blocked);
    if (prompt_tokens > 0) metrics_counter_add(RAGD_METRIC_CHAT_PROMPT_TOKENS,
                                               (uint64_t)prompt_tokens);
    if (completion_tokens > 0)
        metrics_counter_add(RAGD_METRIC_CHAT_COMPLETION_TOKENS, (uint64_t)completion_tokens);
    int dropped = p->budget.history_tokens_dropped +
                  (p->have_answer && p->budget.context_before > p->answer.context.tokens
                       ? p->budget.context_before - p->answer.context.tokens : 0);
    if (dropped > 0) metrics_counter_add(RAGD_METRIC_CHAT_TOKENS_DROPPED, (uint64_t)dropped);
    metrics_chat_cost_add(cost);
    if (upstream_ms >= 0) metrics_histogram_observe(RAGD_METRIC_CHAT_UPSTREAM_SECONDS,
                                                    upstream_ms);
    if (first_token_ms >= 0)
        metrics_histogram_observe(RAGD_METRIC_CHAT_FIRST_TOKEN_SECONDS, first_token_ms);

    log_event *w = log_event_global();
    if (w == NULL) return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[64];
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)(tv.tv_usec / 1000));
    const char *rid = log_record_request_id();
    json_t *o = json_pack(
        "{s:s, s:s, s:o, s:s, s:s, s:b, s:b, s:b, s:b, s:s, s:I, s:I, s:I, s:f, s:i, s:i, s:b}",
        "time", ts, "event", "chat", "request_id", rid[0] ? json_string(rid) : json_null(),
        "intent", p->intent ? p->intent : "", "model", p->route.model, "finetuned",
        p->route.finetuned, "rag_enabled", p->rag_enabled, "retrieved", p->retrieved,
        "low_confidence", p->low_confidence, "outcome", outcome, "upstream_status",
        (json_int_t)upstream_status, "prompt_tokens", (json_int_t)prompt_tokens,
        "completion_tokens", (json_int_t)completion_tokens, "estimated_cost_usd", cost,
        "tool_calls_blocked", blocked, "tokens_dropped", dropped, "stream", p->stream);
    if (o) {
        json_object_set_new(o, "upstream_ms", upstream_ms >= 0 ? json_real(upstream_ms)
                                                               : json_null());
        json_object_set_new(o, "first_token_ms", first_token_ms >= 0 ? json_real(first_token_ms)
                                                                     : json_null());
        json_object_set_new(o, "retrieve_ms", json_real(p->retrieve_ms));
        if (p->query) {
            char hash[UTIL_SHA256_HEX_LEN + 1];
            util_sha256_hex(p->query, strlen(p->query), hash);
            json_object_set_new(o, "query_sha256", json_string(hash));
            if (__atomic_load_n(&cfg->log_queries, __ATOMIC_RELAXED))
                json_object_set_new(o, "query", json_string(p->query));
        }
        char *text = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (text) log_event_write(w, text, strlen(text));
        free(text);
        json_decref(o);
    }
}
