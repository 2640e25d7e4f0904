/* SPDX-License-Identifier: MIT */
/*
 * log_record.c - what one retrieval or one ingest leaves behind: the metrics it feeds (hit or
 * miss, latency histograms, embedder outcome, ingest counts and last-ingest state for /health)
 * and its JSONL line in the event log, tagged with this thread's request id. Also the request
 * ids themselves: an incoming X-Request-Id when it is sane, else 16 random hex characters.
 */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>

#include <jansson.h>

#include "ragd/log_event.h"
#include "ragd/metrics.h"
#include "ragd/util.h"

static _Thread_local char current_request_id[RAGD_REQUEST_ID_MAX];

int log_record_request_id_valid(const char *id)
{
    if (id == NULL) return 0;
    size_t n = strlen(id);
    if (n == 0 || n >= RAGD_REQUEST_ID_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok) return 0;
    }
    return 1;
}

void log_record_request_id_new(char out[RAGD_REQUEST_ID_MAX])
{
    unsigned char raw[8];
    if (getrandom(raw, sizeof raw, GRND_NONBLOCK) != (ssize_t)sizeof raw) {
        /* No entropy yet (early boot): time and a counter still make ids distinct. */
        static _Atomic unsigned long counter;
        struct timeval tv;
        gettimeofday(&tv, NULL);
        unsigned long long x = ((unsigned long long)tv.tv_sec << 20) ^ (unsigned long long)tv.tv_usec ^
                               ((unsigned long long)++counter << 40);
        memcpy(raw, &x, sizeof raw);
    }
    for (size_t i = 0; i < sizeof raw; i++) snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

void log_record_request_id_set(const char *id)
{
    snprintf(current_request_id, sizeof current_request_id, "%s", id ? id : "");
}

const char *log_record_request_id(void)
{
    return current_request_id;
}

/* Writes the current UTC time as 2026-11-26T00:30:00.123Z into out. */
static void timestamp(char out[64])
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000));
}

/* Returns: a new event object with "time", "event" and "request_id" (null when none). */
static json_t *event_new(const char *kind)
{
    char ts[64];
    timestamp(ts);
    const char *id = log_record_request_id();
    json_t *o = json_pack("{s:s, s:s}", "time", ts, "event", kind);
    if (o) json_object_set_new(o, "request_id", id[0] ? json_string(id) : json_null());
    return o;
}

/* Queues o as one line on the process's event log; steals o. */
static void event_emit(json_t *o)
{
    log_event *w = log_event_global();
    if (o != NULL && w != NULL) {
        size_t len = 0; /* json_dumps's text, written faster (src/util_json.c) */
        char *text = util_json_text(o, 1, &len);
        if (text == NULL && (text = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII)) != NULL)
            len = strlen(text);
        if (text != NULL) log_event_write(w, text, len);
        else metrics_counter_add(RAGD_METRIC_LOG_DROPPED, 1);
        free(text);
    }
    json_decref(o);
}

static int embed_failure(ragd_rc rc)
{
    return rc == RAGD_ERR_EMBED || rc == RAGD_ERR_TIMEOUT || rc == RAGD_ERR_UPSTREAM_REFUSED;
}

void log_record_retrieval(const log_retrieval *r, int log_queries)
{
    int hit = r->rc == RAGD_OK && r->rag_enabled && r->results > 0 && !r->low_confidence;
    metrics_counter_add(hit ? RAGD_METRIC_RETRIEVAL_HITS : RAGD_METRIC_RETRIEVAL_MISSES, 1);
    if (r->cache_hit >= 0)
        metrics_counter_add(r->cache_hit ? RAGD_METRIC_CACHE_HITS : RAGD_METRIC_CACHE_MISSES, 1);
    if (r->rc == RAGD_OK && r->rag_enabled) {
        metrics_histogram_observe(RAGD_METRIC_RETRIEVAL_SECONDS, r->total_ms);
        metrics_histogram_observe(RAGD_METRIC_SEARCH_SECONDS, r->search_ms);
        /* a cached query embedding says nothing about the embedder's latency */
        if (r->cache_hit != 1) {
            metrics_histogram_observe(RAGD_METRIC_EMBED_SECONDS, r->embed_ms);
            metrics_embed_note(r->embed_ms, 1, NULL);
        }
    } else if (embed_failure(r->rc)) {
        metrics_embed_note(-1.0, 0, r->error_message ? r->error_message : ragd_rc_name(r->rc));
    }
    if (log_event_global() == NULL) return;

    json_t *o = event_new("retrieval");
    if (o == NULL) return;
    char hash[UTIL_SHA256_HEX_LEN + 1];
    util_sha256_hex(r->query ? r->query : "", r->query ? r->query_len : 0, hash);
    json_object_set_new(o, "query_sha256", json_string(hash));
    if (log_queries && r->query) json_object_set_new(o, "query", json_stringn(r->query,
                                                                              r->query_len));
    if (r->intent) json_object_set_new(o, "intent", json_string(r->intent));
    if (r->collection) json_object_set_new(o, "collection", json_string(r->collection));
    json_object_set_new(o, "k", json_integer(r->k));
    json_object_set_new(o, "rag_enabled", json_boolean(r->rag_enabled));
    json_object_set_new(o, "hit", json_boolean(hit));
    json_object_set_new(o, "results", json_integer((json_int_t)r->results));
    json_object_set_new(o, "low_confidence", json_boolean(r->low_confidence));
    json_object_set_new(o, "top_score", r->results > 0 ? json_real(r->top_score) : json_null());
    if (r->cache_hit >= 0) json_object_set_new(o, "cache_hit", json_boolean(r->cache_hit));
    json_t *lat = json_pack("{s:f, s:f, s:f, s:f}", "embed", r->embed_ms, "search", r->search_ms,
                            "fetch", r->fetch_ms, "total", r->total_ms);
    if (lat && r->cache_ms >= 0) json_object_set_new(lat, "cache", json_real(r->cache_ms));
    json_object_set_new(o, "latency_ms", lat ? lat : json_null());
    if (r->rc != RAGD_OK)
        json_object_set_new(o, "error", json_pack("{s:s, s:s}", "code", ragd_rc_name(r->rc),
                                                  "message", r->error_message
                                                                 ? r->error_message : ""));
    event_emit(o);
}

void log_record_ingest(const char *path, const engine_ingest_report *report, const ragd_err *err)
{
    metrics_counter_add(RAGD_METRIC_INGEST_RUNS, 1);
    const char *result = "ok";
    char message[RAGD_ERR_MSG_MAX] = "";
    if (report == NULL) {
        result = "failed";
        metrics_counter_add(RAGD_METRIC_INGEST_FAILURES, 1);
        snprintf(message, sizeof message, "%s", err ? err->msg : "ingest failed");
    } else if (report->docs_failed > 0) {
        result = "partial";
        metrics_counter_add(RAGD_METRIC_INGEST_DOCS_FAILED, (uint64_t)report->docs_failed);
        snprintf(message, sizeof message, "%lld of %lld files failed",
                 (long long)report->docs_failed, (long long)report->docs_seen);
    }
    metrics_ingest_note(util_unix_time(), result, message);
    if (log_event_global() == NULL) return;

    json_t *o = event_new("ingest");
    if (o == NULL) return;
    json_object_set_new(o, "path", json_string(path ? path : ""));
    json_object_set_new(o, "result", json_string(result));
    if (report != NULL) {
        char *text = engine_ingest_report_json(report);
        json_t *rep = text ? json_loads(text, 0, NULL) : NULL;
        free(text);
        json_object_set_new(o, "report", rep ? rep : json_null());
    } else {
        json_object_set_new(o, "error",
                            json_pack("{s:s, s:s}", "code", ragd_rc_name(err ? err->rc
                                                                             : RAGD_ERR_INTERNAL),
                                      "message", message));
    }
    event_emit(o);
}
