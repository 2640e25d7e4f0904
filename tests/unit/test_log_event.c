/* SPDX-License-Identifier: MIT */
/*
 * test_log_event.c - unit tests for the event log (src/log_event.c, src/log_record.c): lines
 * written in order with a newline each, parent directories created, reopen after a
 * logrotate-style rename, a full queue dropping and counting lines, an unwritable path refused,
 * request ids, and the retrieval/ingest records (fields, query hashed unless log_queries, hit or
 * miss counted, ingest result noted for /health).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "ragd/log.h"
#include "ragd/log_event.h"
#include "ragd/metrics.h"
#include "ragd/util.h"

#include "test_support.h"

typedef struct fixture {
    char dir[256];
    char path[400];
} fixture;

static int setup(void **state)
{
    log_level_set(RAGD_LOG_ERROR);
    metrics_reset();
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL || test_tmpdir_make(f->dir, sizeof f->dir, "logevent") != 0) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/logs/sub/rag.log", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    log_event_global_set(NULL);
    test_tree_remove(f->dir);
    free(f);
    return 0;
}

/* Returns: the file's text (free()), "" when it does not exist. */
static char *slurp(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    if (util_file_read(path, 1 << 24, &data, &len, NULL) != RAGD_OK) return strdup("");
    return data;
}

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p; p++) n += *p == '\n';
    return n;
}

static void test_write_in_order(void **state)
{
    fixture *f = *state;
    log_event *w = NULL;
    assert_int_equal(log_event_open(f->path, 64, &w, NULL), RAGD_OK);
    for (int i = 0; i < 50; i++) {
        char line[32];
        int n = snprintf(line, sizeof line, "{\"n\":%d}", i);
        assert_int_equal(log_event_write(w, line, (size_t)n), 0);
        if (i % 10 == 9) log_event_flush(w); /* keep the queue from filling */
    }
    log_event_close(w);
    char *text = slurp(f->path);
    assert_int_equal(count_lines(text), 50);
    assert_true(strncmp(text, "{\"n\":0}\n{\"n\":1}\n", 16) == 0);
    assert_non_null(strstr(text, "{\"n\":49}\n"));
    free(text);
}

/* Returns: once path holds want lines (polled up to 10 s), its line count. */
static size_t lines_awaited(const char *path, size_t want)
{
    size_t n = 0;
    for (int i = 0; i < 1000; i++) {
        char *text = slurp(path);
        n = count_lines(text);
        free(text);
        if (n >= want) break;
        usleep(10000);
    }
    return n;
}

/* Lines that follow a write closely are held back to go out together (pacing): they still reach
 * the file by themselves, without a flush or a close. */
static void test_paced_lines_arrive_unflushed(void **state)
{
    fixture *f = *state;
    log_event *w = NULL;
    assert_int_equal(log_event_open(f->path, 64, &w, NULL), RAGD_OK);
    assert_int_equal(log_event_write(w, "first", 5), 0);
    assert_int_equal(lines_awaited(f->path, 1), 1);
    for (int i = 0; i < 5; i++) assert_int_equal(log_event_write(w, "burst", 5), 0);
    assert_int_equal(lines_awaited(f->path, 6), 6);
    /* a flush right after a write is not held up by the pacing, and sees its line out */
    assert_int_equal(log_event_write(w, "flushed", 7), 0);
    log_event_flush(w);
    char *text = slurp(f->path);
    assert_string_equal(text, "first\nburst\nburst\nburst\nburst\nburst\nflushed\n");
    free(text);
    log_event_close(w);
}

static void test_reopen_after_rename(void **state)
{
    fixture *f = *state;
    log_event *w = NULL;
    assert_int_equal(log_event_open(f->path, 16, &w, NULL), RAGD_OK);
    assert_int_equal(log_event_write(w, "before", 6), 0);
    log_event_flush(w);
    char rotated[450];
    snprintf(rotated, sizeof rotated, "%s.1", f->path);
    assert_int_equal(rename(f->path, rotated), 0);
    /* Without a reopen the writer still appends to the renamed file (what logrotate sees). */
    assert_int_equal(log_event_write(w, "renamed", 7), 0);
    log_event_flush(w);
    log_event_reopen(w);
    log_event_flush(w);
    assert_int_equal(log_event_write(w, "after", 5), 0);
    log_event_close(w);
    char *old = slurp(rotated), *fresh = slurp(f->path);
    assert_string_equal(old, "before\nrenamed\n");
    assert_string_equal(fresh, "after\n");
    free(old);
    free(fresh);
}

static void test_queue_full_drops_and_counts(void **state)
{
    fixture *f = *state;
    log_event *w = NULL;
    assert_int_equal(log_event_open(f->path, 4, &w, NULL), RAGD_OK);
    log_event_pause(w, 1);
    int queued = 0, dropped = 0;
    for (int i = 0; i < 7; i++) {
        if (log_event_write(w, "x", 1) == 0) queued++;
        else dropped++;
    }
    assert_int_equal(queued, 4);
    assert_int_equal(dropped, 3);
    assert_int_equal(log_event_dropped(w), 3);
    assert_int_equal(metrics_counter_get(RAGD_METRIC_LOG_DROPPED), 3);
    log_event_pause(w, 0);
    log_event_flush(w);
    /* Room again once drained. */
    assert_int_equal(log_event_write(w, "y", 1), 0);
    log_event_close(w);
    char *text = slurp(f->path);
    assert_string_equal(text, "x\nx\nx\nx\ny\n");
    free(text);
}

static void test_open_refused(void **state)
{
    fixture *f = *state;
    /* A path below a regular file cannot be created. */
    char blocker[300], bad[400];
    snprintf(blocker, sizeof blocker, "%s/file", f->dir);
    assert_int_equal(test_file_write(f->dir, "file", "x"), 0);
    snprintf(bad, sizeof bad, "%s/rag.log", blocker);
    log_event *w = NULL;
    ragd_err err = {0};
    assert_int_not_equal(log_event_open(bad, 8, &w, &err), RAGD_OK);
    assert_null(w);
    assert_non_null(strstr(err.msg, blocker));
    assert_int_equal(log_event_open("", 8, &w, NULL), RAGD_ERR_INVALID);
    log_event_close(NULL);
    assert_int_equal(log_event_write(NULL, "x", 1), -1);
}

static void test_request_ids(void **state)
{
    (void)state;
    assert_true(log_record_request_id_valid("abc-123"));
    assert_true(log_record_request_id_valid("req:7.a_b"));
    assert_false(log_record_request_id_valid(""));
    assert_false(log_record_request_id_valid(NULL));
    assert_false(log_record_request_id_valid("has space"));
    assert_false(log_record_request_id_valid("quote\"s"));
    char longid[80];
    memset(longid, 'a', 65);
    longid[65] = '\0';
    assert_false(log_record_request_id_valid(longid));
    char a[RAGD_REQUEST_ID_MAX], b[RAGD_REQUEST_ID_MAX];
    log_record_request_id_new(a);
    log_record_request_id_new(b);
    assert_int_equal(strlen(a), 16);
    assert_true(log_record_request_id_valid(a));
    assert_string_not_equal(a, b);
    log_record_request_id_set("r-1");
    assert_string_equal(log_record_request_id(), "r-1");
    log_record_request_id_set(NULL);
    assert_string_equal(log_record_request_id(), "");
}

/* Returns: line number `index` of the file parsed as JSON (new reference). */
static json_t *line_json(const char *path, size_t index)
{
    char *text = slurp(path);
    char *p = text;
    for (size_t i = 0; i < index && p; i++) p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL;
    json_t *o = NULL;
    if (p && *p) {
        size_t n = strcspn(p, "\n");
        o = json_loadb(p, n, 0, NULL);
    }
    free(text);
    return o;
}

static void test_records(void **state)
{
    fixture *f = *state;
    log_event *w = NULL;
    assert_int_equal(log_event_open(f->path, 16, &w, NULL), RAGD_OK);
    log_event_global_set(w);
    log_record_request_id_set("req-42");

    log_retrieval hit = {.query = "refund policy", .query_len = 13, .intent = "search_info",
                         .k = 5, .rag_enabled = 1, .results = 2, .top_score = 0.5,
                         .cache_hit = -1, .cache_ms = -1, .embed_ms = 0.1, .search_ms = 0.2,
                         .fetch_ms = 0.3, .total_ms = 0.7};
    log_record_retrieval(&hit, 0);
    log_retrieval miss = hit;
    miss.results = 0;
    miss.intent = NULL;
    miss.cache_hit = 1;
    miss.cache_ms = 0.05;
    log_record_retrieval(&miss, 1);
    log_retrieval failed = hit;
    failed.results = 0;
    failed.rc = RAGD_ERR_EMBED;
    failed.error_message = "provider said 500";
    log_record_retrieval(&failed, 0);
    log_record_request_id_set(NULL);

    engine_ingest_report rep = {.root = "/srv/docs", .docs_seen = 4, .docs_added = 3,
                                .docs_failed = 1};
    log_record_ingest("/srv/docs", &rep, NULL);
    ragd_err err = {0};
    ragd_err_set(&err, RAGD_ERR_NOT_FOUND, "path not found: /nope");
    log_record_ingest("/nope", NULL, &err);
    log_event_flush(w);

    assert_int_equal(metrics_counter_get(RAGD_METRIC_RETRIEVAL_HITS), 1);
    assert_int_equal(metrics_counter_get(RAGD_METRIC_RETRIEVAL_MISSES), 2);
    assert_int_equal(metrics_counter_get(RAGD_METRIC_INGEST_RUNS), 2);
    assert_int_equal(metrics_counter_get(RAGD_METRIC_INGEST_FAILURES), 1);
    assert_int_equal(metrics_counter_get(RAGD_METRIC_INGEST_DOCS_FAILED), 1);
    int64_t at;
    char result[16], msg[128];
    metrics_ingest_state(&at, result, sizeof result, msg, sizeof msg);
    assert_string_equal(result, "failed");
    assert_non_null(strstr(msg, "path not found"));
    double p50, p95;
    size_t n;
    int reachable;
    char eerr[64];
    metrics_embed_state(&p50, &p95, &n, &reachable, eerr, sizeof eerr);
    assert_int_equal(reachable, 0);
    assert_string_equal(eerr, "provider said 500");

    json_t *o = line_json(f->path, 0);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "event")), "retrieval");
    assert_string_equal(json_string_value(json_object_get(o, "request_id")), "req-42");
    char hash[UTIL_SHA256_HEX_LEN + 1];
    util_sha256_hex("refund policy", 13, hash);
    assert_string_equal(json_string_value(json_object_get(o, "query_sha256")), hash);
    assert_null(json_object_get(o, "query")); /* log_queries off */
    assert_string_equal(json_string_value(json_object_get(o, "intent")), "search_info");
    assert_int_equal(json_integer_value(json_object_get(o, "k")), 5);
    assert_true(json_is_true(json_object_get(o, "hit")));
    assert_true(json_real_value(json_object_get(o, "top_score")) == 0.5);
    assert_null(json_object_get(o, "cache_hit")); /* no cache wired */
    json_t *lat = json_object_get(o, "latency_ms");
    assert_true(json_real_value(json_object_get(lat, "total")) == 0.7);
    assert_null(json_object_get(lat, "cache"));
    assert_non_null(strstr(json_string_value(json_object_get(o, "time")), "Z"));
    json_decref(o);

    o = line_json(f->path, 1);
    assert_true(json_is_false(json_object_get(o, "hit")));
    assert_true(json_is_null(json_object_get(o, "top_score")));
    assert_string_equal(json_string_value(json_object_get(o, "query")), "refund policy");
    assert_null(json_object_get(o, "intent"));
    assert_true(json_is_true(json_object_get(o, "cache_hit")));
    assert_true(json_real_value(json_object_get(json_object_get(o, "latency_ms"), "cache")) ==
                0.05);
    json_decref(o);

    o = line_json(f->path, 2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "error"), "code")),
                        "embed_error");
    json_decref(o);

    o = line_json(f->path, 3);
    assert_string_equal(json_string_value(json_object_get(o, "event")), "ingest");
    assert_true(json_is_null(json_object_get(o, "request_id")));
    assert_string_equal(json_string_value(json_object_get(o, "result")), "partial");
    json_t *docs = json_object_get(json_object_get(o, "report"), "documents");
    assert_int_equal(json_integer_value(json_object_get(docs, "added")), 3);
    json_decref(o);

    o = line_json(f->path, 4);
    assert_string_equal(json_string_value(json_object_get(o, "result")), "failed");
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "error"), "code")),
                        "not_found");
    json_decref(o);
    assert_null(line_json(f->path, 5));

    log_event_global_set(NULL);
    log_event_close(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paced_lines_arrive_unflushed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_after_rename, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full_drops_and_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
