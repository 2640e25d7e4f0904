/* SPDX-License-Identifier: MIT */
/*
 * embed_openai.c - the "openai" embedding provider: POST {base_url}/embeddings in the OpenAI
 * protocol over libcurl, for OpenAI itself and compatible servers (Ollama, vLLM, TEI, LocalAI).
 *
 * A run packs its texts into requests under the API's limits (2048 inputs, 300,000 tokens per
 * request, 8191 per input, and the configured batch_size), sends up to `concurrency` of them at
 * once through one curl multi handle, and hands each batch to the caller as soon as it returns,
 * so paid work can be stored before anything else can fail. Failed attempts are retried with
 * exponential backoff and jitter, honouring retry-after-ms / Retry-After, bounded in count and
 * time; refusals (bad key, no quota, bad request, unknown model) fail at once with the upstream's
 * own message. Vectors are L2-normalised; the replies' usage tokens are counted. The API key is
 * only ever placed in the Authorization header: it is scrubbed from every message ragd writes.
 */
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "embed_int.h"
#include "ragd/embed.h"
#include "ragd/ingest.h"
#include "ragd/log.h"
#include "ragd/metrics.h"
#include "ragd/util.h"

#define BACKOFF_BASE_MS 500.0
#define BACKOFF_CAP_MS 8000.0
#define UPSTREAM_MSG_MAX 300
#define MULTI_POOL_MAX 16

typedef struct openai_state {
    char *url;       /* {base_url}/embeddings */
    char *key;       /* may be empty; never logged */
    struct curl_slist *headers;
    int send_dimensions;
    int concurrency;
    int max_retries;
    double retry_budget_ms;
    long connect_timeout_ms;
    long timeout_ms;
    /* Idle multi handles, each with its own pool of open connections: a run takes one and gives
     * it back, so the next run (a query, the next document) reuses a warm keep-alive (and TLS)
     * connection. libcurl does not support one connection cache across concurrent threads, hence
     * one per run at a time rather than a shared cache. */
    pthread_mutex_t pool_mu;
    CURLM *pool[MULTI_POOL_MAX];
    size_t pool_n;
} openai_state;

static CURLM *multi_take(openai_state *st)
{
    CURLM *m = NULL;
    pthread_mutex_lock(&st->pool_mu);
    if (st->pool_n > 0) m = st->pool[--st->pool_n];
    pthread_mutex_unlock(&st->pool_mu);
    return m != NULL ? m : curl_multi_init();
}

static void multi_give(openai_state *st, CURLM *m)
{
    if (m == NULL) return;
    pthread_mutex_lock(&st->pool_mu);
    if (st->pool_n < MULTI_POOL_MAX) {
        st->pool[st->pool_n++] = m;
        m = NULL;
    }
    pthread_mutex_unlock(&st->pool_mu);
    if (m != NULL) curl_multi_cleanup(m);
}

/* ---- pure pieces (embed_int.h) ------------------------------------------------------------- */

size_t embed_tokens_bound(const char *text, size_t len)
{
    size_t est = ingest_tokens_count(text, len);
    size_t bound = est + est / 4 + 1;
    return bound < len ? bound : len;
}

size_t embed_batch_pack(const size_t *tokens, size_t n, size_t max_inputs, size_t max_tokens)
{
    if (n == 0) return 0;
    if (max_inputs == 0) max_inputs = 1;
    size_t count = 0, sum = 0;
    while (count < n && count < max_inputs) {
        if (count > 0 && sum + tokens[count] > max_tokens) break;
        sum += tokens[count];
        count++;
    }
    return count;
}

embed_verdict embed_status_verdict(long status, const char *code, const char *type)
{
    if (status == 429) {
        if ((code && strcmp(code, "insufficient_quota") == 0) ||
            (type && strcmp(type, "insufficient_quota") == 0))
            return RAGD_EMBED_REFUSED;
        return RAGD_EMBED_RETRY;
    }
    if (status == 408 || status == 409 || status >= 500) return RAGD_EMBED_RETRY;
    return RAGD_EMBED_REFUSED;
}

double embed_retry_after_ms(const char *retry_after_ms, const char *retry_after, int64_t now)
{
    if (retry_after_ms != NULL && retry_after_ms[0] != '\0') {
        char *end = NULL;
        double v = strtod(retry_after_ms, &end);
        while (end && isspace((unsigned char)*end)) end++;
        if (end != retry_after_ms && end && *end == '\0' && isfinite(v) && v >= 0) return v;
    }
    if (retry_after != NULL && retry_after[0] != '\0') {
        char *end = NULL;
        double v = strtod(retry_after, &end);
        while (end && isspace((unsigned char)*end)) end++;
        if (end != retry_after && end && *end == '\0' && isfinite(v) && v >= 0) return v * 1000.0;
        time_t when = curl_getdate(retry_after, NULL);
        if (when != (time_t)-1) return when > now ? (double)(when - now) * 1000.0 : 0.0;
    }
    return -1.0;
}

double embed_backoff_ms(int attempt, double base_ms, double cap_ms, double random)
{
    if (attempt < 1) attempt = 1;
    double d = base_ms;
    for (int i = 1; i < attempt && d < cap_ms; i++) d *= 2;
    if (d > cap_ms) d = cap_ms;
    return d / 2 + d / 2 * random;
}

/* ---- one run ------------------------------------------------------------------------------ */

enum job_state { JOB_WAITING, JOB_FLYING, JOB_DONE };

typedef struct job {
    size_t first, count; /* indexes into the run's packed list (see run.idx) */
    char *body;
    size_t body_len;
    CURL *easy;
    util_buf reply;
    size_t reply_max; /* bytes; see on_body */
    char retry_after_ms[32];
    char retry_after[64];
    int attempts;
    double started_ms, next_at_ms;
    enum job_state state;
} job;

typedef struct run {
    embed_provider *p;
    openai_state *st;
    const char *const *texts;
    const size_t *lens;
    float *out;
    size_t *idx; /* packed position -> input index (empty inputs are never sent) */
    job *jobs;
    size_t njobs;
    CURLM *multi;
    embed_done_fn done;
    void *ctx;
    size_t flying;
    unsigned rand_state;
} run;

/* Replaces every occurrence of the key in msg with "<redacted>" (upstreams sometimes echo it). */
static void scrub_key(const openai_state *st, char *msg, size_t size)
{
    size_t klen = strlen(st->key);
    if (klen < 4) return;
    char *at;
    while ((at = strstr(msg, st->key)) != NULL) {
        static const char mark[] = "<redacted>";
        size_t tail = strlen(at + klen);
        size_t mlen = sizeof mark - 1;
        if ((size_t)(at - msg) + mlen + tail + 1 > size) {
            memset(at, '*', klen);
            continue;
        }
        memmove(at + mlen, at + klen, tail + 1);
        memcpy(at, mark, mlen);
    }
}

static ragd_rc fail(run *r, ragd_rc rc, ragd_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static ragd_rc fail(run *r, ragd_rc rc, ragd_err *err, const char *fmt, ...)
{
    char msg[RAGD_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    scrub_key(r->st, msg, sizeof msg);
    metrics_upstream_error_add(rc);
    return ragd_err_set(err, rc, "%s", msg);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    job *j = ud;
    size_t n = size * nmemb;
    /* A reply far larger than count x dims numbers can be is not an embeddings reply: stop
     * reading it rather than hold an unbounded body in memory. */
    if (j->reply.len + n > j->reply_max) return 0;
    return util_buf_append(&j->reply, data, n) == 0 ? n : 0;
}

static void header_copy(char *dst, size_t size, const char *v, size_t n)
{
    while (n > 0 && isspace((unsigned char)*v)) v++, n--;
    while (n > 0 && isspace((unsigned char)v[n - 1])) n--;
    if (n >= size) n = size - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    job *j = ud;
    size_t n = size * nmemb;
    static const char ms[] = "retry-after-ms:", s[] = "retry-after:";
    if (n > sizeof ms - 1 && strncasecmp(data, ms, sizeof ms - 1) == 0)
        header_copy(j->retry_after_ms, sizeof j->retry_after_ms, data + sizeof ms - 1,
                    n - (sizeof ms - 1));
    else if (n > sizeof s - 1 && strncasecmp(data, s, sizeof s - 1) == 0)
        header_copy(j->retry_after, sizeof j->retry_after, data + sizeof s - 1, n - (sizeof s - 1));
    return n;
}

/* Builds the JSON body of job j. Returns: RAGD_OK or RAGD_ERR_NOMEM. */
static ragd_rc job_body(run *r, job *j, ragd_err *err)
{
    json_t *input = json_array();
    json_t *o = json_pack("{s:s, s:o, s:s}", "model", r->p->model, "input", input,
                          "encoding_format", "float");
    int bad = o == NULL;
    for (size_t k = 0; !bad && k < j->count; k++) {
        size_t i = r->idx[j->first + k];
        size_t len = r->lens ? r->lens[i] : strlen(r->texts[i]);
        bad = json_array_append_new(input, json_stringn(r->texts[i], len)) != 0;
    }
    if (!bad && r->st->send_dimensions)
        bad = json_object_set_new(o, "dimensions", json_integer(r->p->dims)) != 0;
    if (!bad) j->body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (bad || j->body == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "embed: out of memory");
    j->body_len = strlen(j->body);
    return RAGD_OK;
}

static ragd_rc job_start(run *r, job *j, ragd_err *err)
{
    openai_state *st = r->st;
    util_buf_free(&j->reply);
    j->retry_after_ms[0] = j->retry_after[0] = '\0';
    if (j->easy == NULL && (j->easy = curl_easy_init()) == NULL)
        return ragd_err_set(err, RAGD_ERR_NOMEM, "embed: curl_easy_init failed");
    CURL *c = j->easy;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, st->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, st->headers);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, j->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, j);
    curl_easy_setopt(c, CURLOPT_PRIVATE, j);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, st->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, st->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "ragd/" RAGD_VERSION);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (curl_multi_add_handle(r->multi, c) != CURLM_OK)
        return ragd_err_set(err, RAGD_ERR_INTERNAL, "embed: curl_multi_add_handle failed");
    if (j->attempts > 0) atomic_fetch_add(&r->p->counters.retries, 1);
    else j->started_ms = util_now_ms(); /* the retry budget counts from the first attempt */
    j->attempts++;
    j->state = JOB_FLYING;
    atomic_fetch_add(&r->p->counters.requests, 1);
    metrics_counter_add(RAGD_METRIC_EMBED_REQUESTS, 1);
    r->flying++;
    return RAGD_OK;
}

/* The upstream's error.message / code / type from an error reply (empty strings when absent). */
static void error_fields(const util_buf *reply, char *msg, size_t msize, char *code, size_t csize,
                         char *type, size_t tsize)
{
    msg[0] = code[0] = type[0] = '\0';
    json_t *o = reply->data ? json_loadb(reply->data, reply->len, 0, NULL) : NULL;
    json_t *e = json_object_get(o, "error");
    if (json_is_string(e)) snprintf(msg, msize, "%s", json_string_value(e));
    if (json_is_object(e)) {
        json_t *v = json_object_get(e, "message");
        if (json_is_string(v)) snprintf(msg, msize, "%s", json_string_value(v));
        v = json_object_get(e, "code");
        if (json_is_string(v)) snprintf(code, csize, "%s", json_string_value(v));
        v = json_object_get(e, "type");
        if (json_is_string(v)) snprintf(type, tsize, "%s", json_string_value(v));
    }
    json_decref(o);
    if (msg[0] == '\0' && reply->data && reply->len > 0) {
        /* Not the OpenAI error shape: quote the start of the body, made printable. */
        size_t n = reply->len < msize - 1 ? reply->len : msize - 1;
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)reply->data[i];
            msg[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : ' ';
        }
        msg[n] = '\0';
    }
}

/* Parses a 2xx reply into the output rows of job j. Returns: RAGD_OK, RAGD_ERR_EMBED with a
 * message in why (malformed: retryable), or RAGD_ERR_INVALID (wrong dims: not retryable). */
static ragd_rc reply_parse(run *r, job *j, int64_t *tokens, char *why, size_t wsize)
{
    int dims = r->p->dims;
    json_error_t jerr;
    json_t *o = json_loadb(j->reply.data ? j->reply.data : "", j->reply.len, 0, &jerr);
    ragd_rc rc = RAGD_OK;
    unsigned char *seen = calloc(j->count, 1);
    json_t *data = json_object_get(o, "data");
    if (seen == NULL) {
        snprintf(why, wsize, "out of memory");
        rc = RAGD_ERR_NOMEM;
    } else if (o == NULL) {
        snprintf(why, wsize, "reply is not JSON (%s)", jerr.text);
        rc = RAGD_ERR_EMBED;
    } else if (!json_is_array(data) || json_array_size(data) != j->count) {
        snprintf(why, wsize, "reply has %zu embeddings for %zu inputs",
                 json_is_array(data) ? json_array_size(data) : 0, j->count);
        rc = RAGD_ERR_EMBED;
    }
    size_t k;
    json_t *item;
    json_array_foreach(rc == RAGD_OK ? data : NULL, k, item) {
        json_t *jidx = json_object_get(item, "index");
        json_t *vec = json_object_get(item, "embedding");
        json_int_t at = json_is_integer(jidx) ? json_integer_value(jidx) : (json_int_t)k;
        if (at < 0 || (size_t)at >= j->count || seen[at] || !json_is_array(vec)) {
            snprintf(why, wsize, "reply item %zu has a bad index or embedding", k);
            rc = RAGD_ERR_EMBED;
            break;
        }
        if (json_array_size(vec) != (size_t)dims) {
            snprintf(why, wsize, "model %s returned %zu dimensions, ragd is configured for %d "
                     "(embed.dims)", r->p->model, json_array_size(vec), dims);
            rc = RAGD_ERR_INVALID;
            break;
        }
        seen[at] = 1;
        float *row = r->out + r->idx[j->first + (size_t)at] * (size_t)dims;
        double norm = 0;
        size_t d;
        json_t *x;
        json_array_foreach(vec, d, x) {
            if (!json_is_number(x)) break;
            double v = json_number_value(x);
            row[d] = (float)v;
            norm += v * v;
        }
        if (d != (size_t)dims || !isfinite(norm)) {
            snprintf(why, wsize, "reply item %zu holds a value that is not a finite number", k);
            rc = RAGD_ERR_EMBED;
            break;
        }
        if (norm > 0) {
            float scale = (float)(1.0 / sqrt(norm));
            for (int i = 0; i < dims; i++) row[i] *= scale;
        }
    }
    if (rc == RAGD_OK) {
        json_t *usage = json_object_get(o, "usage");
        json_t *t = json_object_get(usage, "total_tokens");
        if (!json_is_integer(t)) t = json_object_get(usage, "prompt_tokens");
        *tokens = json_is_integer(t) && json_integer_value(t) > 0 ? json_integer_value(t) : 0;
    }
    free(seen);
    json_decref(o);
    return rc;
}

static double rand_unit(run *r)
{
    return (double)rand_r(&r->rand_state) / ((double)RAND_MAX + 1.0);
}

/* Schedules a retry of j, or fails the run. what describes the failure. */
static ragd_rc job_retry(run *r, job *j, ragd_rc final_rc, const char *what, ragd_err *err)
{
    openai_state *st = r->st;
    double now = util_now_ms();
    if (j->attempts > st->max_retries)
        return fail(r, final_rc, err, "embed: %s (gave up after %d attempts)", what, j->attempts);
    double wait = embed_retry_after_ms(j->retry_after_ms, j->retry_after, util_unix_time());
    if (wait < 0) wait = embed_backoff_ms(j->attempts, BACKOFF_BASE_MS, BACKOFF_CAP_MS,
                                          rand_unit(r));
    if (now + wait - j->started_ms > st->retry_budget_ms)
        return fail(r, final_rc, err, "embed: %s (no retry: waiting %.0f ms more would pass "
                    "embed.retry_max_time)", what, wait);
    char shown[RAGD_ERR_MSG_MAX];
    snprintf(shown, sizeof shown, "%s", what);
    scrub_key(st, shown, sizeof shown);
    RAGD_LOG(RAGD_LOG_WARN, "embed", "%s; retry %d in %.0f ms", shown, j->attempts, wait);
    metrics_upstream_error_add(final_rc); /* a retried failure is an upstream error too */
    j->state = JOB_WAITING;
    j->next_at_ms = now + wait;
    return RAGD_OK;
}

/* Handles one finished transfer. Returns: RAGD_OK (done, or retry scheduled) or the run's error. */
static ragd_rc job_finish(run *r, job *j, CURLcode cc, ragd_err *err)
{
    embed_counter_cells *cnt = &r->p->counters;
    char what[RAGD_ERR_MSG_MAX];
    curl_multi_remove_handle(r->multi, j->easy);
    r->flying--;
    if (cc != CURLE_OK) {
        int timeout = cc == CURLE_OPERATION_TIMEDOUT;
        atomic_fetch_add(timeout ? &cnt->timeout : &cnt->network, 1);
        snprintf(what, sizeof what, "%s: %s", r->st->url, curl_easy_strerror(cc));
        return job_retry(r, j, timeout ? RAGD_ERR_TIMEOUT : RAGD_ERR_EMBED, what, err);
    }
    long status = 0;
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
        int64_t tokens = 0;
        char why[256] = "";
        ragd_rc rc = reply_parse(r, j, &tokens, why, sizeof why);
        if (rc == RAGD_ERR_EMBED) {
            atomic_fetch_add(&cnt->bad_reply, 1);
            snprintf(what, sizeof what, "%s: HTTP %ld with a bad reply: %s", r->st->url, status,
                     why);
            return job_retry(r, j, RAGD_ERR_EMBED, what, err);
        }
        if (rc != RAGD_OK) {
            atomic_fetch_add(&cnt->bad_reply, 1);
            return fail(r, rc == RAGD_ERR_INVALID ? RAGD_ERR_EMBED : rc, err, "embed: %s", why);
        }
        atomic_fetch_add(&cnt->tokens, (unsigned long long)tokens);
        metrics_counter_add(RAGD_METRIC_EMBED_TOKENS, (uint64_t)tokens);
        atomic_fetch_add(&cnt->inputs, j->count);
        j->state = JOB_DONE;
        util_buf_free(&j->reply);
        if (r->done == NULL) return RAGD_OK;
        /* Hand over contiguous input ranges; empty inputs (never sent) are zero rows already. */
        size_t first = r->idx[j->first], last = r->idx[j->first + j->count - 1];
        if (last - first + 1 == j->count)
            return r->done(r->ctx, first, j->count, r->out + first * (size_t)r->p->dims, tokens,
                           err);
        ragd_rc handed = RAGD_OK;
        for (size_t k = 0; k < j->count; k++) {
            size_t i = r->idx[j->first + k];
            ragd_rc drc = r->done(r->ctx, i, 1, r->out + i * (size_t)r->p->dims,
                                  k == 0 ? tokens : 0, err);
            if (drc == RAGD_ERR_UNAVAILABLE) handed = drc; /* draining: hand over the rest too */
            else if (drc != RAGD_OK) return drc;
        }
        return handed;
    }
    char msg[UPSTREAM_MSG_MAX], code[64], type[64];
    error_fields(&j->reply, msg, sizeof msg, code, sizeof code, type, sizeof type);
    snprintf(what, sizeof what, "%s: HTTP %ld%s%s%s%s", r->st->url, status,
             code[0] ? " " : "", code, msg[0] ? ": " : "", msg);
    embed_verdict v = embed_status_verdict(status, code, type);
    if (v == RAGD_EMBED_RETRY) {
        atomic_fetch_add(status == 429 ? &cnt->rate_limited : &cnt->server, 1);
        return job_retry(r, j, status == 408 ? RAGD_ERR_TIMEOUT : RAGD_ERR_EMBED, what, err);
    }
    atomic_fetch_add(&cnt->refused, 1);
    return fail(r, RAGD_ERR_UPSTREAM_REFUSED, err, "embed: upstream refused: %s", what);
}

static void run_cleanup(run *r)
{
    for (size_t i = 0; r->jobs && i < r->njobs; i++) {
        job *j = &r->jobs[i];
        if (j->easy) {
            if (j->state == JOB_FLYING) curl_multi_remove_handle(r->multi, j->easy);
            curl_easy_cleanup(j->easy);
        }
        free(j->body);
        util_buf_free(&j->reply);
    }
    free(r->jobs);
    free(r->idx);
    multi_give(r->st, r->multi);
}

static ragd_rc openai_run(embed_provider *p, const char *const *texts, const size_t *lens,
                          size_t n, float *out, embed_done_fn done, void *ctx, ragd_err *err)
{
    openai_state *st = p->state;
    run r = {.p = p, .st = st, .texts = texts, .lens = lens, .out = out, .done = done,
             .ctx = ctx, .rand_state = (unsigned)(util_now_ms() * 1000.0) ^ (unsigned)n};
    memset(out, 0, sizeof(float) * n * (size_t)p->dims);
    size_t *tokens = malloc(sizeof *tokens * n);
    r.idx = malloc(sizeof *r.idx * n);
    r.jobs = calloc(n, sizeof *r.jobs);
    ragd_rc rc = RAGD_OK;
    if (tokens == NULL || r.idx == NULL || r.jobs == NULL)
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "embed: out of memory");
    /* Check every input before sending anything: an input over the API's limit is refused here,
     * never sent to fail (and never half a document paid for first). */
    size_t packed = 0;
    for (size_t i = 0; rc == RAGD_OK && i < n; i++) {
        size_t len = texts[i] == NULL ? 0 : (lens ? lens[i] : strlen(texts[i]));
        if (len == 0) continue; /* the API refuses empty input; an empty text is a zero row */
        size_t t = embed_tokens_bound(texts[i], len);
        if (t > RAGD_OPENAI_MAX_INPUT_TOKENS)
            rc = ragd_err_set(err, RAGD_ERR_TOO_LARGE,
                              "embed: input %zu is about %zu tokens, over the %d-token limit of "
                              "one embedding input; lower chunk.max_tokens", i + 1, t,
                              RAGD_OPENAI_MAX_INPUT_TOKENS);
        tokens[packed] = t;
        r.idx[packed++] = i;
    }
    size_t cap = p->max_batch > 0 && p->max_batch < RAGD_OPENAI_MAX_INPUTS ? p->max_batch
                                                                           : RAGD_OPENAI_MAX_INPUTS;
    for (size_t at = 0; rc == RAGD_OK && at < packed;) {
        size_t count = embed_batch_pack(tokens + at, packed - at, cap,
                                        RAGD_OPENAI_MAX_REQUEST_TOKENS);
        job *j = &r.jobs[r.njobs++];
        j->first = at;
        j->count = count;
        j->reply_max = count * (size_t)p->dims * 48 + ((size_t)1 << 20);
        rc = job_body(&r, j, err);
        at += count;
    }
    free(tokens);
    if (rc == RAGD_OK && r.njobs > 0 && (r.multi = multi_take(st)) == NULL)
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "embed: curl_multi_init failed");

    size_t finished = 0;
    double t0 = util_now_ms();
    for (size_t i = 0; i < r.njobs; i++) r.jobs[i].next_at_ms = t0;
    /* done() answering RAGD_ERR_UNAVAILABLE (shutdown) drains the run: no new request starts,
     * but the ones in flight, already paid for, are still received and handed over. */
    int draining = 0;
    while (rc == RAGD_OK && (draining ? r.flying > 0 : finished < r.njobs)) {
        double now = util_now_ms();
        double next_due = -1;
        for (size_t i = 0; rc == RAGD_OK && !draining && i < r.njobs; i++) {
            job *j = &r.jobs[i];
            if (j->state != JOB_WAITING) continue;
            if (j->next_at_ms <= now && r.flying < (size_t)st->concurrency) {
                rc = job_start(&r, j, err);
            } else if (next_due < 0 || j->next_at_ms < next_due) {
                next_due = j->next_at_ms;
            }
        }
        if (rc != RAGD_OK) break;
        int running = 0;
        if (curl_multi_perform(r.multi, &running) != CURLM_OK) {
            rc = ragd_err_set(err, RAGD_ERR_INTERNAL, "embed: curl_multi_perform failed");
            break;
        }
        CURLMsg *m;
        int left;
        while (rc == RAGD_OK && (m = curl_multi_info_read(r.multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE) continue;
            char *priv = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
            job *j = (job *)priv;
            rc = job_finish(&r, j, m->data.result, err);
            if (rc == RAGD_ERR_UNAVAILABLE) {
                draining = 1;
                rc = RAGD_OK;
            }
            if (rc == RAGD_OK && j->state == JOB_DONE) finished++;
        }
        if (rc != RAGD_OK || finished == r.njobs || (draining && r.flying == 0)) break;
        /* Sleep until a socket is ready or the next retry is due (never more than 100 ms, so a
         * retry whose slot frees up starts soon). */
        int wait_ms = 100;
        if (next_due >= 0 && r.flying < (size_t)st->concurrency) {
            double d = next_due - util_now_ms();
            wait_ms = d <= 0 ? 0 : (d < 100 ? (int)d + 1 : 100);
        }
        if (wait_ms > 0) curl_multi_poll(r.multi, NULL, 0, wait_ms, NULL);
    }
    run_cleanup(&r);
    if (rc == RAGD_OK && draining) rc = RAGD_ERR_UNAVAILABLE; /* err holds done()'s message */
    return rc;
}

static ragd_rc openai_batch(embed_provider *p, const char *const *texts, const size_t *lens,
                            size_t n, float *out, ragd_err *err)
{
    return openai_run(p, texts, lens, n, out, NULL, NULL, err);
}

static void openai_destroy(embed_provider *p)
{
    openai_state *st = p->state;
    if (st) {
        for (size_t i = 0; i < st->pool_n; i++) curl_multi_cleanup(st->pool[i]);
        pthread_mutex_destroy(&st->pool_mu);
        free(st->url);
        if (st->key) {
            memset(st->key, 0, strlen(st->key));
            free(st->key);
        }
        curl_slist_free_all(st->headers);
        free(st);
    }
    free(p);
}

static const embed_ops openai_ops = {
    .name = "openai",
    .batch = openai_batch,
    .destroy = openai_destroy,
    .run = openai_run,
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_start(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Adds "Name: value" pairs separated by ';' from spec to *list. Returns: RAGD_OK or CONFIG. */
static ragd_rc headers_add(struct curl_slist **list, const char *spec, ragd_err *err)
{
    const char *s = spec;
    while (*s) {
        const char *end = strchr(s, ';');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        while (n > 0 && isspace((unsigned char)*s)) s++, n--;
        while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
        if (n > 0) {
            const char *colon = memchr(s, ':', n);
            int ok = colon != NULL && colon > s;
            for (const char *c = s; ok && c < colon; c++)
                ok = isgraph((unsigned char)*c) && *c != ':';
            for (const char *c = s; ok && c < s + n; c++)
                ok = *c != '\r' && *c != '\n';
            if (!ok)
                return ragd_err_set(err, RAGD_ERR_CONFIG, "embed.headers: each header must be "
                                    "\"Name: value\" (entries separated by ';')");
            char *h = util_strndup(s, n);
            struct curl_slist *l = h ? curl_slist_append(*list, h) : NULL;
            free(h);
            if (l == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "embed: out of memory");
            *list = l;
        }
        s += n;
        while (*s && *s != ';') s++;
        if (*s == ';') s++;
    }
    return RAGD_OK;
}

ragd_rc embed_openai_new(const ragd_cfg *cfg, embed_provider **out, ragd_err *err)
{
    const char *base = cfg->embed_base_url ? cfg->embed_base_url : "";
    const char *model = cfg->embed_model ? cfg->embed_model : "";
    if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0)
        return ragd_err_set(err, RAGD_ERR_CONFIG, "embed.base_url \"%s\" must start with http:// "
                            "or https://", base);
    if (model[0] == '\0' || strlen(model) >= sizeof(((embed_provider *)0)->model))
        return ragd_err_set(err, RAGD_ERR_CONFIG, "embed.model must be 1..127 characters");
    if (cfg->embed_dims < 1)
        return ragd_err_set(err, RAGD_ERR_CONFIG, "embed.dims must be positive");
    pthread_once(&curl_once, curl_start);

    embed_provider *p = calloc(1, sizeof *p);
    openai_state *st = calloc(1, sizeof *st);
    if (p == NULL || st == NULL) {
        free(p);
        free(st);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "embed: out of memory");
    }
    pthread_mutex_init(&st->pool_mu, NULL);
    p->ops = &openai_ops;
    p->state = st;
    snprintf(p->model, sizeof p->model, "%s", model);
    p->dims = cfg->embed_dims;
    p->max_batch = RAGD_OPENAI_MAX_INPUTS;
    p->max_input_tokens = RAGD_OPENAI_MAX_INPUT_TOKENS;
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/') blen--;
    util_buf url = {0};
    ragd_rc rc = RAGD_OK;
    if (util_buf_append(&url, base, blen) != 0 || util_buf_puts(&url, "/embeddings") != 0)
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "embed: out of memory");
    st->url = util_buf_steal(&url);
    st->key = strdup(cfg->embed_api_key ? cfg->embed_api_key : "");
    if (rc == RAGD_OK && (st->url == NULL || st->key == NULL))
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "embed: out of memory");
    const char *sd = cfg->embed_send_dimensions ? cfg->embed_send_dimensions : "auto";
    st->send_dimensions = strcmp(sd, "true") == 0 ||
                          (strcmp(sd, "auto") == 0 && strncmp(model, "text-embedding-3", 16) == 0);
    st->concurrency = cfg->embed_concurrency > 0 ? cfg->embed_concurrency : 1;
    st->max_retries = cfg->embed_max_retries;
    st->retry_budget_ms = cfg->embed_retry_max_time_s * 1000.0;
    st->connect_timeout_ms = (long)cfg->embed_connect_timeout_s * 1000L;
    st->timeout_ms = (long)cfg->embed_timeout_s * 1000L;

    struct curl_slist *h = NULL;
    if (rc == RAGD_OK) {
        h = curl_slist_append(NULL, "Content-Type: application/json");
        if (h) h = curl_slist_append(h, "Expect:");
        if (h == NULL) rc = ragd_err_set(err, RAGD_ERR_NOMEM, "embed: out of memory");
    }
    if (rc == RAGD_OK && st->key[0] != '\0') {
        util_buf auth = {0};
        struct curl_slist *l = NULL;
        if (util_buf_printf(&auth, "Authorization: Bearer %s", st->key) == 0)
            l = curl_slist_append(h, auth.data);
        if (auth.data) memset(auth.data, 0, auth.len);
        util_buf_free(&auth);
        if (l == NULL) rc = ragd_err_set(err, RAGD_ERR_NOMEM, "embed: out of memory");
        else h = l;
    }
    if (rc == RAGD_OK && cfg->embed_headers) rc = headers_add(&h, cfg->embed_headers, err);
    st->headers = h;
    if (rc != RAGD_OK) {
        openai_destroy(p);
        return rc;
    }
    RAGD_LOG(RAGD_LOG_INFO, "embed", "openai provider: %s model %s dims %d%s, %d in flight, "
             "%s", st->url, p->model, p->dims, st->send_dimensions ? " (sent)" : "",
             st->concurrency, st->key[0] ? "API key set" : "no API key");
    *out = p;
    return RAGD_OK;
}
