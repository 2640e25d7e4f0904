/* SPDX-License-Identifier: MIT */
/*
 * chat_upstream.c - the HTTP client to the chat upstream: POST {base_url}/chat/completions in
 * the OpenAI protocol over libcurl, whole or streamed (server-sent events, each `data:` payload
 * handed to the caller as it arrives). Failed attempts are retried with the embeddings
 * provider's rules (embed_status_verdict, retry-after-ms / Retry-After, exponential backoff with
 * jitter: src/embed_openai.c), but only before the first byte of an answer went to the caller,
 * bounded by [chat] max_retries and retry_max_time. The caller's cancel (its client closed the
 * connection) aborts the transfer within a fraction of a second. The API key is only ever put
 * in the Authorization header.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "chat_int.h"
#include "embed_int.h"
#include "ragd/log.h"
#include "ragd/util.h"

#define BACKOFF_BASE_MS 250.0
#define BACKOFF_CAP_MS 4000.0
#define ERROR_BODY_MAX (64 * 1024)

typedef struct transfer {
    const chat_upstream_req *req;
    chat_upstream_result *res;
    CURL *easy;
    int started;     /* on_start was called: no retry any more */
    int failed_cb;   /* the caller's callback asked to stop */
    long status;
    util_buf line;   /* SSE: the current line */
    util_buf data;   /* SSE: the current event's data */
    double t0;
    char retry_after_ms[32], retry_after[64];
} transfer;

static int cancelled(const transfer *t)
{
    return t->req->cancelled && t->req->cancelled(t->req->ctx);
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    return cancelled(ud) ? 1 : 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    transfer *t = ud;
    size_t n = size * nmemb;
    static const struct {
        const char *name;
        size_t off, cap;
    } wanted[] = {{"retry-after-ms:", offsetof(transfer, retry_after_ms), 32},
                  {"retry-after:", offsetof(transfer, retry_after), 64}};
    for (size_t i = 0; i < 2; i++) {
        size_t l = strlen(wanted[i].name);
        if (n > l && strncasecmp(data, wanted[i].name, l) == 0) {
            const char *v = data + l;
            size_t vn = n - l;
            while (vn > 0 && isspace((unsigned char)*v)) v++, vn--;
            while (vn > 0 && isspace((unsigned char)v[vn - 1])) vn--;
            char *dst = (char *)t + wanted[i].off;
            if (vn >= wanted[i].cap) vn = wanted[i].cap - 1;
            memcpy(dst, v, vn);
            dst[vn] = '\0';
        }
    }
    return n;
}

/* Hands the SSE event collected so far to the caller. Returns: 0, or -1 to stop. */
static int event_flush(transfer *t)
{
    if (t->data.len == 0) return 0;
    if (t->res->first_event_ms < 0) t->res->first_event_ms = util_now_ms() - t->t0;
    int rc = t->req->on_event(t->req->ctx, t->data.data, t->data.len);
    t->data.len = 0;
    if (t->data.data) t->data.data[0] = '\0';
    return rc;
}

/* One complete SSE line (without its end of line). Returns: 0, or -1 to stop. */
static int sse_line(transfer *t, const char *line, size_t n)
{
    if (n > 0 && line[n - 1] == '\r') n--;
    if (n == 0) return event_flush(t);
    if (line[0] == ':') return 0; /* a comment (keep-alive) */
    if (n >= 5 && strncmp(line, "data:", 5) == 0) {
        const char *v = line + 5;
        size_t vn = n - 5;
        if (vn > 0 && *v == ' ') v++, vn--;
        int bad = t->data.len > 0 && util_buf_append(&t->data, "\n", 1) != 0;
        bad |= util_buf_append(&t->data, v, vn) != 0;
        return bad ? -1 : 0;
    }
    return 0; /* event:, id:, retry: carry nothing the chat protocol uses */
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    transfer *t = ud;
    size_t n = size * nmemb;
    if (t->status == 0) curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
    int ok2xx = t->status >= 200 && t->status < 300;
    if (!t->req->stream || !ok2xx) {
        if (t->res->body.len + n > (ok2xx ? (size_t)64 << 20 : (size_t)ERROR_BODY_MAX)) return 0;
        return util_buf_append(&t->res->body, data, n) == 0 ? n : 0;
    }
    if (!t->started) {
        t->started = 1;
        if (t->req->on_start && t->req->on_start(t->req->ctx) != 0) {
            t->failed_cb = 1;
            return 0;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (data[i] != '\n') {
            if (util_buf_append(&t->line, data + i, 1) != 0) return 0;
            continue;
        }
        int rc = sse_line(t, t->line.data ? t->line.data : "", t->line.len);
        t->line.len = 0;
        if (t->line.data) t->line.data[0] = '\0';
        if (rc != 0) {
            t->failed_cb = 1;
            return 0;
        }
    }
    return n;
}

/* Sleeps ms, waking early when the caller cancels. Returns: 1 when cancelled. */
static int pause_ms(const transfer *t, double ms)
{
    double end = util_now_ms() + ms;
    while (util_now_ms() < end) {
        if (cancelled(t)) return 1;
        double left = end - util_now_ms();
        if (left > 50) left = 50;
        if (left <= 0) break;
        struct timespec ts = {0, (long)(left * 1e6)};
        nanosleep(&ts, NULL);
    }
    return cancelled(t);
}

/* Replaces every occurrence of key in msg (size bytes) with "<redacted>": an upstream that echoes
 * the key it was given never gets it into ragd's replies or logs. */
static void key_scrub(const char *key, char *msg, size_t size)
{
    if (key == NULL || strlen(key) < 4) return;
    char *hit;
    while ((hit = strstr(msg, key)) != NULL) {
        char rest[RAGD_ERR_MSG_MAX];
        snprintf(rest, sizeof rest, "%s", hit + strlen(key));
        snprintf(hit, size - (size_t)(hit - msg), "<redacted>%s", rest);
    }
}

/* The error message and code of an OpenAI-shaped error body (may be absent). */
static void error_fields(const util_buf *body, chat_upstream_result *res)
{
    json_t *o = body->data ? json_loadb(body->data, body->len, 0, NULL) : NULL;
    json_t *e = json_object_get(o, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (msg == NULL) msg = json_string_value(e);
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *type = json_string_value(json_object_get(e, "type"));
    snprintf(res->message, sizeof res->message, "%s", msg ? msg : "");
    snprintf(res->code, sizeof res->code, "%s", code ? code : "");
    snprintf(res->type, sizeof res->type, "%s", type ? type : "");
    json_decref(o);
}

ragd_rc chat_upstream_call(const chat_upstream_req *req, chat_upstream_result *res,
                           ragd_err *err)
{
    memset(res, 0, sizeof *res);
    res->first_event_ms = -1;
    util_buf auth = {0};
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (headers) headers = curl_slist_append(headers, "Expect:");
    if (headers && req->stream) headers = curl_slist_append(headers, "Accept: text/event-stream");
    if (headers && req->api_key && req->api_key[0]) {
        struct curl_slist *l = NULL;
        if (util_buf_printf(&auth, "Authorization: Bearer %s", req->api_key) == 0)
            l = curl_slist_append(headers, auth.data);
        if (l == NULL) {
            curl_slist_free_all(headers);
            headers = NULL;
        } else {
            headers = l;
        }
    }
    if (auth.data) memset(auth.data, 0, auth.len);
    util_buf_free(&auth);
    if (headers == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");

    double begin = util_now_ms();
    ragd_rc rc = RAGD_OK;
    for (int attempt = 1;; attempt++) {
        transfer t = {.req = req, .res = res, .t0 = util_now_ms()};
        util_buf_free(&res->body);
        res->first_event_ms = -1;
        res->attempts = attempt;
        t.easy = curl_easy_init();
        if (t.easy == NULL) {
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
            break;
        }
        curl_easy_setopt(t.easy, CURLOPT_URL, req->url);
        curl_easy_setopt(t.easy, CURLOPT_POST, 1L);
        curl_easy_setopt(t.easy, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(t.easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(t.easy, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(t.easy, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(t.easy, CURLOPT_WRITEDATA, &t);
        curl_easy_setopt(t.easy, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(t.easy, CURLOPT_HEADERDATA, &t);
        curl_easy_setopt(t.easy, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(t.easy, CURLOPT_XFERINFODATA, &t);
        curl_easy_setopt(t.easy, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(t.easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(t.easy, CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
        curl_easy_setopt(t.easy, CURLOPT_TIMEOUT_MS, req->timeout_ms);
        curl_easy_setopt(t.easy, CURLOPT_PROTOCOLS_STR, "http,https");
        CURLcode cc = curl_easy_perform(t.easy);
        if (t.status == 0) curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &t.status);
        curl_easy_cleanup(t.easy);
        if (cc == CURLE_OK && req->stream && t.status >= 200 && t.status < 300) {
            if (t.line.len > 0) sse_line(&t, t.line.data, t.line.len);
            event_flush(&t); /* a last event without its blank line */
        }
        util_buf_free(&t.line);
        util_buf_free(&t.data);
        res->status = t.status;
        res->started = t.started;
        res->total_ms = util_now_ms() - begin;

        int retryable = 0;
        const char *what = NULL;
        char msg[RAGD_ERR_MSG_MAX];
        if (cancelled(&t)) {
            res->cancelled = 1;
            rc = ragd_err_set(err, RAGD_ERR_UNAVAILABLE, "the client went away; upstream request "
                              "cancelled");
            break;
        }
        if (t.failed_cb) {
            rc = ragd_err_set(err, RAGD_ERR_INTERNAL, "the answer could not be passed on");
            break;
        }
        if (cc != CURLE_OK) {
            int timeout = cc == CURLE_OPERATION_TIMEDOUT;
            snprintf(msg, sizeof msg, "chat upstream %s: %s", req->url, curl_easy_strerror(cc));
            what = msg;
            rc = timeout ? RAGD_ERR_TIMEOUT : RAGD_ERR_UPSTREAM_REFUSED;
            res->network = 1;
            retryable = !t.started;
        } else if (t.status < 200 || t.status >= 300) {
            error_fields(&res->body, res);
            key_scrub(req->api_key, res->message, sizeof res->message);
            snprintf(msg, sizeof msg, "chat upstream %s: HTTP %ld%s%s%s%s", req->url, t.status,
                     res->code[0] ? " " : "", res->code, res->message[0] ? ": " : "",
                     res->message);
            what = msg;
            rc = RAGD_ERR_UPSTREAM_REFUSED;
            retryable = embed_status_verdict(t.status, res->code[0] ? res->code : NULL,
                                             res->type[0] ? res->type : NULL) == RAGD_EMBED_RETRY;
        } else {
            rc = RAGD_OK;
            break;
        }
        double wait = embed_retry_after_ms(t.retry_after_ms, t.retry_after, util_unix_time());
        if (wait < 0) {
            unsigned seed = (unsigned)(util_now_ms() * 1000.0) ^ (unsigned)attempt;
            wait = embed_backoff_ms(attempt, BACKOFF_BASE_MS, BACKOFF_CAP_MS,
                                    (double)rand_r(&seed) / ((double)RAND_MAX + 1.0));
        }
        int budget_ok = util_now_ms() + wait - begin <= req->retry_budget_ms;
        if (!retryable || attempt > req->max_retries || !budget_ok) {
            ragd_err_set(err, rc, "%s%s", what,
                         retryable ? " (retries exhausted)" : "");
            break;
        }
        RAGD_LOG(RAGD_LOG_WARN, "chat", "%s; retry %d in %.0f ms", what, attempt, wait);
        rc = RAGD_OK;
        if (pause_ms(&t, wait)) {
            res->cancelled = 1;
            rc = ragd_err_set(err, RAGD_ERR_UNAVAILABLE, "the client went away; upstream request "
                              "cancelled");
            break;
        }
    }
    curl_slist_free_all(headers);
    return rc;
}

void chat_upstream_result_free(chat_upstream_result *res)
{
    if (res == NULL) return;
    util_buf_free(&res->body);
}
