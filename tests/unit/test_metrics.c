/* SPDX-License-Identifier: MIT */
/*
 * test_metrics.c - unit tests for src/metrics.c: counters, histogram bucket placement (bounds
 * inclusive, +Inf), the HTTP table by route and status, upstream error kinds, label escaping, the
 * embed latency percentiles and reachability, the last ingest, and the Prometheus text rendering
 * (HELP/TYPE lines, cumulative buckets, every counter present at 0, sums in seconds).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ragd/metrics.h"
#include "ragd/util.h"

static int reset(void **state)
{
    (void)state;
    metrics_reset();
    return 0;
}

/* Returns: the rendered text (free()). */
static char *render(const metrics_gauges *g)
{
    util_buf b = {0};
    assert_int_equal(metrics_render(g, &b), 0);
    return util_buf_steal(&b);
}

/* Returns: the value on the line that starts with "series " in text, or -1 when absent. */
static double series_value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') return strtod(p + n + 1, NULL);
    }
    return -1;
}

static void test_counters(void **state)
{
    (void)state;
    assert_int_equal(metrics_counter_get(RAGD_METRIC_RETRIEVAL_HITS), 0);
    metrics_counter_add(RAGD_METRIC_RETRIEVAL_HITS, 1);
    metrics_counter_add(RAGD_METRIC_RETRIEVAL_HITS, 2);
    metrics_counter_add(RAGD_METRIC_EMBED_TOKENS, 1000);
    metrics_counter_add(RAGD_METRIC_COUNTER_COUNT, 5); /* out of range: ignored */
    assert_int_equal(metrics_counter_get(RAGD_METRIC_RETRIEVAL_HITS), 3);
    assert_int_equal(metrics_counter_get(RAGD_METRIC_EMBED_TOKENS), 1000);
    assert_int_equal(metrics_counter_get(RAGD_METRIC_RETRIEVAL_MISSES), 0);
    char *t = render(NULL);
    assert_true(series_value(t, "ragd_retrieval_hits_total") == 3);
    assert_true(series_value(t, "ragd_embedding_tokens_total") == 1000);
    /* Counters nobody fed yet still render, at 0, with their HELP and TYPE. */
    static const char *const names[] = {
        "ragd_retrieval_misses_total", "ragd_cache_hits_total",    "ragd_cache_misses_total",
        "ragd_embedding_requests_total", "ragd_ingest_runs_total", "ragd_ingest_failures_total",
        "ragd_log_dropped_lines_total", "ragd_flat_search_passes_total",
        "ragd_flat_search_pass_searches_total"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char want[160];
        if (series_value(t, names[i]) != 0) fail_msg("%s not rendered at 0", names[i]);
        snprintf(want, sizeof want, "# TYPE %s counter\n", names[i]);
        if (strstr(t, want) == NULL) fail_msg("no TYPE line for %s", names[i]);
        snprintf(want, sizeof want, "# HELP %s ", names[i]);
        if (strstr(t, want) == NULL) fail_msg("no HELP line for %s", names[i]);
    }
    free(t);
}

static void test_histogram_buckets(void **state)
{
    (void)state;
    /* Bounds are inclusive (le): 0.5 ms lands in le=0.0005; just over goes to the next. */
    metrics_histogram_observe(RAGD_METRIC_SEARCH_SECONDS, 0.5);
    metrics_histogram_observe(RAGD_METRIC_SEARCH_SECONDS, 0.51);
    metrics_histogram_observe(RAGD_METRIC_SEARCH_SECONDS, 7.0);
    metrics_histogram_observe(RAGD_METRIC_SEARCH_SECONDS, 60000.0); /* 60 s: only +Inf */
    metrics_histogram_observe(RAGD_METRIC_SEARCH_SECONDS, -1.0);   /* ignored */
    uint64_t b[RAGD_METRIC_BUCKET_COUNT + 1];
    assert_int_equal(metrics_histogram_get(RAGD_METRIC_SEARCH_SECONDS, b), 4);
    assert_int_equal(b[0], 1);  /* le 0.0005 */
    assert_int_equal(b[1], 2);  /* le 0.001, cumulative */
    assert_int_equal(b[3], 2);  /* le 0.005 */
    assert_int_equal(b[4], 3);  /* le 0.01 holds the 7 ms */
    assert_int_equal(b[RAGD_METRIC_BUCKET_COUNT - 1], 3); /* le 10 */
    assert_int_equal(b[RAGD_METRIC_BUCKET_COUNT], 4);     /* +Inf */

    char *t = render(NULL);
    assert_non_null(strstr(t, "# TYPE ragd_retrieval_search_duration_seconds histogram\n"));
    assert_true(series_value(t, "ragd_retrieval_search_duration_seconds_bucket{le=\"0.0005\"}")
                == 1);
    assert_true(series_value(t, "ragd_retrieval_search_duration_seconds_bucket{le=\"0.01\"}")
                == 3);
    assert_true(series_value(t, "ragd_retrieval_search_duration_seconds_bucket{le=\"10\"}") == 3);
    assert_true(series_value(t, "ragd_retrieval_search_duration_seconds_bucket{le=\"+Inf\"}")
                == 4);
    assert_true(series_value(t, "ragd_retrieval_search_duration_seconds_count") == 4);
    double sum = series_value(t, "ragd_retrieval_search_duration_seconds_sum");
    assert_true(sum > 60.0080 && sum < 60.0081); /* seconds: 0.5 + 0.51 + 7 + 60000 ms */
    /* The other histograms render empty. */
    assert_true(series_value(t, "ragd_retrieval_duration_seconds_count") == 0);
    assert_true(series_value(t, "ragd_retrieval_embed_duration_seconds_bucket{le=\"+Inf\"}") == 0);
    free(t);
}

static void test_http_and_upstream(void **state)
{
    (void)state;
    metrics_http_request_add("/retrieve", 200);
    metrics_http_request_add("/retrieve", 200);
    metrics_http_request_add("/retrieve", 400);
    metrics_http_request_add("/health", 503);
    assert_int_equal(metrics_http_request_get("/retrieve", 200), 2);
    assert_int_equal(metrics_http_request_get("/retrieve", 400), 1);
    assert_int_equal(metrics_http_request_get("/retrieve", 404), 0);
    metrics_upstream_error_add(RAGD_ERR_TIMEOUT);
    metrics_upstream_error_add(RAGD_ERR_TIMEOUT);
    metrics_upstream_error_add(RAGD_ERR_IO); /* not a known kind: "other" */
    char *t = render(NULL);
    assert_true(series_value(t, "ragd_http_requests_total{route=\"/retrieve\",status=\"200\"}")
                == 2);
    assert_true(series_value(t, "ragd_http_requests_total{route=\"/health\",status=\"503\"}")
                == 1);
    assert_true(series_value(t, "ragd_upstream_errors_total{kind=\"timeout\"}") == 2);
    assert_true(series_value(t, "ragd_upstream_errors_total{kind=\"upstream_refused\"}") == 0);
    assert_true(series_value(t, "ragd_upstream_errors_total{kind=\"cache_error\"}") == 0);
    assert_true(series_value(t, "ragd_upstream_errors_total{kind=\"other\"}") == 1);
    free(t);
}

static void test_label_escape(void **state)
{
    (void)state;
    util_buf b = {0};
    assert_int_equal(metrics_label_escape(&b, "a\"b\\c\nd"), 0);
    assert_string_equal(b.data, "a\\\"b\\\\c\\nd");
    util_buf_free(&b);
    /* A route with those characters renders as one well-formed line. */
    metrics_http_request_add("/x\"y\n", 404);
    char *t = render(NULL);
    assert_non_null(strstr(t, "ragd_http_requests_total{route=\"/x\\\"y\\n\",status=\"404\"} 1\n"));
    free(t);
}

static void test_gauges(void **state)
{
    (void)state;
    metrics_gauges g = {.documents = 3, .chunks = 17, .embeddings = 15, .index_vectors = 17,
                        .index_bytes = 69632, .have_store = 1};
    char *t = render(&g);
    assert_non_null(strstr(t, "# TYPE ragd_chunks gauge\n"));
    assert_true(series_value(t, "ragd_documents") == 3);
    assert_true(series_value(t, "ragd_chunks") == 17);
    assert_true(series_value(t, "ragd_index_bytes") == 69632);
    free(t);
    g.have_store = 0;
    metrics_in_flight_add(1);
    metrics_in_flight_add(1);
    metrics_in_flight_add(-1);
    t = render(&g);
    assert_null(strstr(t, "ragd_chunks"));
    assert_true(series_value(t, "ragd_http_requests_in_flight") == 1);
    free(t);
}

static void test_embed_state_and_ingest(void **state)
{
    (void)state;
    double p50, p95;
    size_t n;
    int reachable;
    char err[64];
    metrics_embed_state(&p50, &p95, &n, &reachable, err, sizeof err);
    assert_int_equal(n, 0);
    assert_true(p50 == 0 && p95 == 0);
    assert_int_equal(reachable, 1);
    for (int i = 1; i <= 100; i++) metrics_embed_note((double)i, 1, NULL);
    metrics_embed_state(&p50, &p95, &n, &reachable, err, sizeof err);
    assert_int_equal(n, 100);
    assert_true(p50 == 50.0);
    assert_true(p95 == 95.0);
    /* The ring keeps the most recent RAGD_METRIC_EMBED_RING samples only. */
    for (int i = 0; i < RAGD_METRIC_EMBED_RING; i++) metrics_embed_note(1000.0, 1, NULL);
    metrics_embed_state(&p50, &p95, &n, &reachable, err, sizeof err);
    assert_int_equal(n, RAGD_METRIC_EMBED_RING);
    assert_true(p50 == 1000.0);
    metrics_embed_note(-1, 0, "timed out after 2000 ms");
    metrics_embed_state(&p50, &p95, &n, &reachable, err, sizeof err);
    assert_int_equal(reachable, 0);
    assert_string_equal(err, "timed out after 2000 ms");
    assert_int_equal(n, RAGD_METRIC_EMBED_RING); /* a failure adds no latency */

    int64_t at;
    char result[16], msg[64];
    metrics_ingest_state(&at, result, sizeof result, msg, sizeof msg);
    assert_int_equal(at, 0);
    assert_string_equal(result, "none");
    metrics_ingest_note(1764111111, "partial", "1 of 4 files failed");
    metrics_ingest_state(&at, result, sizeof result, msg, sizeof msg);
    assert_int_equal(at, 1764111111);
    assert_string_equal(result, "partial");
    assert_string_equal(msg, "1 of 4 files failed");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_counters, reset),
        cmocka_unit_test_setup(test_histogram_buckets, reset),
        cmocka_unit_test_setup(test_http_and_upstream, reset),
        cmocka_unit_test_setup(test_label_escape, reset),
        cmocka_unit_test_setup(test_gauges, reset),
        cmocka_unit_test_setup(test_embed_state_and_ingest, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
