/* SPDX-License-Identifier: MIT */
/*
 * test_cache.c - unit tests for src/cache_query.c: redis_url parsing (TCP, passwords, ACL users,
 * IPv6, unix sockets, errors that never show the password), query normalisation and cache keys,
 * the LRU (hits, recency, eviction, replacement, capacity 0), the cache object without Redis, and
 * the checks on values read from Redis (binding to the key, finiteness, unit length).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/cache_int.h"
#include "ragd/cache.h"
#include "ragd/cfg.h"

static void test_url_tcp(void **state)
{
    (void)state;
    cache_redis_url u;
    ragd_err err = {0};
    assert_int_equal(cache_url_parse("redis://127.0.0.1:6380/3", &u, &err), RAGD_OK);
    assert_false(u.is_unix);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 3);
    assert_string_equal(u.password, "");

    assert_int_equal(cache_url_parse("redis://cache.internal", &u, &err), RAGD_OK);
    assert_string_equal(u.host, "cache.internal");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);

    assert_int_equal(cache_url_parse("redis://:s3cr%40t@localhost:7000/1", &u, &err), RAGD_OK);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "s3cr@t");
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 1);

    assert_int_equal(cache_url_parse("redis://ragd:pw@10.0.0.5:6379/", &u, &err), RAGD_OK);
    assert_string_equal(u.user, "ragd");
    assert_string_equal(u.password, "pw");
    assert_int_equal(u.db, 0);

    assert_int_equal(cache_url_parse("redis://justpw@h", &u, &err), RAGD_OK);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "justpw");

    assert_int_equal(cache_url_parse("redis://[::1]:6390/2", &u, &err), RAGD_OK);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 6390);
    char where[160];
    cache_url_where(&u, where, sizeof where);
    assert_string_equal(where, "[::1]:6390/2");
}

static void test_url_unix(void **state)
{
    (void)state;
    cache_redis_url u;
    ragd_err err = {0};
    assert_int_equal(cache_url_parse("unix:/run/redis/redis.sock", &u, &err), RAGD_OK);
    assert_true(u.is_unix);
    assert_string_equal(u.path, "/run/redis/redis.sock");
    assert_int_equal(u.db, 0);
    assert_int_equal(cache_url_parse("unix:///tmp/r.sock?db=4&password=p%21", &u, &err), RAGD_OK);
    assert_string_equal(u.path, "/tmp/r.sock");
    assert_int_equal(u.db, 4);
    assert_string_equal(u.password, "p!");
    char where[160];
    cache_url_where(&u, where, sizeof where);
    assert_string_equal(where, "unix:/tmp/r.sock/4");
    assert_null(strstr(where, "p!"));
    assert_int_equal(cache_url_parse("redis+unix:/tmp/x.sock", &u, &err), RAGD_OK);
    assert_string_equal(u.path, "/tmp/x.sock");
}

static void test_url_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "http://localhost:6379", "rediss://h:6380", "redis://", "redis://h:0", "redis://h:65536",
        "redis://h:port", "redis://h/db", "redis://h:6379/1/2", "redis://[::1", "unix:relative",
        "unix:", "unix:/x?db=z", "unix:/x?color=red", "redis://:%zz@h", "redis://h:6379x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cache_redis_url u;
        ragd_err err = {0};
        if (cache_url_parse(bad[i], &u, &err) != RAGD_ERR_CONFIG) fail_msg("accepted %s", bad[i]);
        assert_non_null(strstr(err.msg, "redis_url"));
    }
    cache_redis_url u;
    ragd_err err = {0};
    assert_int_equal(cache_url_parse("redis://:topsecret@h:99999", &u, &err), RAGD_ERR_CONFIG);
    assert_null(strstr(err.msg, "topsecret"));
}

static void test_normalise_and_key(void **state)
{
    (void)state;
    size_t n = 0;
    char *s = cache_text_normalise("  How do\t\tI   get\na refund?  ", 29, &n);
    assert_non_null(s);
    assert_string_equal(s, "How do I get a refund?");
    assert_int_equal(n, strlen(s));
    free(s);
    s = cache_text_normalise(" \n\t ", 4, &n);
    assert_string_equal(s, "");
    assert_int_equal(n, 0);
    free(s);

    char a[RAGD_CACHE_KEY_MAX], b[RAGD_CACHE_KEY_MAX], c[RAGD_CACHE_KEY_MAX];
    const char *q1 = "refund policy", *q2 = "  refund \n policy ";
    assert_int_equal(cache_key_make("openai", "m", 64, q1, strlen(q1), a), 0);
    assert_int_equal(cache_key_make("openai", "m", 64, q2, strlen(q2), b), 0);
    assert_string_equal(a, b); /* whitespace does not matter */
    assert_int_equal(strncmp(a, RAGD_CACHE_KEY_PREFIX, strlen(RAGD_CACHE_KEY_PREFIX)), 0);
    assert_int_equal(strlen(a), strlen(RAGD_CACHE_KEY_PREFIX) + UTIL_SHA256_HEX_LEN);
    /* Case, provider, model and dims all make different keys. */
    assert_int_equal(cache_key_make("openai", "m", 64, "Refund policy", 13, c), 0);
    assert_string_not_equal(a, c);
    assert_int_equal(cache_key_make("local", "m", 64, q1, strlen(q1), c), 0);
    assert_string_not_equal(a, c);
    assert_int_equal(cache_key_make("openai", "m2", 64, q1, strlen(q1), c), 0);
    assert_string_not_equal(a, c);
    assert_int_equal(cache_key_make("openai", "m", 128, q1, strlen(q1), c), 0);
    assert_string_not_equal(a, c);
    /* Field boundaries are unambiguous: ("ab","c") differs from ("a","bc"). */
    assert_int_equal(cache_key_make("ab", "c", 1, "x", 1, b), 0);
    assert_int_equal(cache_key_make("a", "bc", 1, "x", 1, c), 0);
    assert_string_not_equal(b, c);
}

static void key_of(int i, char *out)
{
    snprintf(out, RAGD_CACHE_KEY_MAX, "k%d", i);
}

static void test_lru(void **state)
{
    (void)state;
    cache_lru *l = cache_lru_new(3, sizeof(int));
    assert_non_null(l);
    char k[RAGD_CACHE_KEY_MAX];
    int v, out;
    for (int i = 1; i <= 3; i++) {
        key_of(i, k);
        v = i * 10;
        cache_lru_put(l, k, &v);
    }
    assert_int_equal(cache_lru_count(l), 3);
    key_of(1, k);
    assert_int_equal(cache_lru_get(l, k, &out), 1); /* k1 is now the most recent */
    assert_int_equal(out, 10);
    key_of(4, k);
    v = 40;
    cache_lru_put(l, k, &v); /* evicts k2, the least recently used */
    assert_int_equal(cache_lru_count(l), 3);
    key_of(2, k);
    assert_int_equal(cache_lru_get(l, k, &out), 0);
    for (int i = 1; i <= 4; i += (i == 1 ? 2 : 1)) {
        key_of(i, k);
        assert_int_equal(cache_lru_get(l, k, &out), 1);
        assert_int_equal(out, i * 10);
    }
    /* Replacing keeps the count and takes the new value. */
    key_of(3, k);
    v = 33;
    cache_lru_put(l, k, &v);
    assert_int_equal(cache_lru_count(l), 3);
    assert_int_equal(cache_lru_get(l, k, &out), 1);
    assert_int_equal(out, 33);
    /* Churn through many keys: the last three remain. */
    for (int i = 100; i < 1100; i++) {
        key_of(i, k);
        v = i;
        cache_lru_put(l, k, &v);
    }
    assert_int_equal(cache_lru_count(l), 3);
    for (int i = 1097; i < 1100; i++) {
        key_of(i, k);
        assert_int_equal(cache_lru_get(l, k, &out), 1);
        assert_int_equal(out, i);
    }
    key_of(1096, k);
    assert_int_equal(cache_lru_get(l, k, &out), 0);
    cache_lru_free(l);

    l = cache_lru_new(0, sizeof(int));
    assert_non_null(l);
    key_of(1, k);
    cache_lru_put(l, k, &v);
    assert_int_equal(cache_lru_get(l, k, &out), 0);
    assert_int_equal(cache_lru_count(l), 0);
    cache_lru_free(l);
    cache_lru_free(NULL);
}

/* Values read from Redis are checked, not trusted on length: foreign bytes, a value written for
 * another query (or model, or dims), NaN, Inf, zeros and a vector of the wrong norm are refused. */
static void test_value_binding(void **state)
{
    (void)state;
    enum { D = 8 };
    char key[RAGD_CACHE_KEY_MAX], other[RAGD_CACHE_KEY_MAX], key16[RAGD_CACHE_KEY_MAX];
    assert_int_equal(cache_key_make("openai", "m", D, "refunds", 7, key), 0);
    assert_int_equal(cache_key_make("openai", "m", D, "returns", 7, other), 0);
    assert_int_equal(cache_key_make("openai", "m", 16, "refunds", 7, key16), 0);
    float v[D] = {0.5f, 0.5f, 0.5f, 0.5f, 0, 0, 0, 0}; /* unit length */
    size_t size = cache_value_size(D);
    assert_int_equal(size, 40 + D * 4);
    unsigned char *val = malloc(size), *bad = malloc(size);
    assert_non_null(val);
    assert_non_null(bad);
    assert_int_equal(cache_value_encode(key, D, v, val), 0);
    assert_int_equal(cache_value_encode("ragd:qemb:v1:nothex", D, v, bad), -1);
    float out[D] = {0};
    assert_null(cache_value_check(key, D, val, size, out));
    assert_memory_equal(out, v, sizeof v);

    float untouched[D] = {9, 9, 9, 9, 9, 9, 9, 9};
    memcpy(out, untouched, sizeof out);
    /* another query's value copied under this key */
    assert_string_equal(cache_value_check(other, D, val, size, out),
                        "written for another query or model");
    /* the bare floats of a v1 value, or anything of the wrong length */
    assert_string_equal(cache_value_check(key, D, v, sizeof v, out), "wrong length");
    assert_string_equal(cache_value_check(key, D, val, size - 1, out), "wrong length");
    /* another program's bytes of the right length */
    memset(bad, 'x', size);
    assert_string_equal(cache_value_check(key, D, bad, size, out), "not a ragd value");
    /* a header claiming other dims */
    memcpy(bad, val, size);
    uint32_t dims16 = 16;
    memcpy(bad + 4, &dims16, 4);
    assert_string_equal(cache_value_check(key, D, bad, size, out),
                        "written for other dimensions");
    /* bound correctly but poisoned: NaN, Inf, zeros, a scaled vector */
    float poison[4][D] = {{0.5f, 0.5f, 0.5f, 0.5f, 0, 0, 0, 0},
                          {0.5f, 0.5f, 0.5f, 0.5f, 0, 0, 0, 0},
                          {0},
                          {1.0f, 1.0f, 0, 0, 0, 0, 0, 0}};
    poison[0][3] = __builtin_nanf("");
    poison[1][0] = __builtin_inff();
    const char *want[4] = {"not finite", "not finite", "not of unit length",
                           "not of unit length"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(cache_value_encode(key, D, poison[i], bad), 0);
        assert_string_equal(cache_value_check(key, D, bad, size, out), want[i]);
        /* values that are scores (the reranker's): any length, but still finite and bound */
        const char *got = cache_value_check_as(key, D, bad, size, 0, out);
        if (i < 2)
            assert_string_equal(got, "not finite");
        else
            assert_null(got);
    }
    assert_string_equal(cache_value_check_as(other, D, val, size, 0, out),
                        "written for another query or model");
    memcpy(out, untouched, sizeof out);
    /* a D-dims value under the key of the same query at 16 dims */
    assert_non_null(cache_value_check(key16, 16, val, size, out));
    assert_memory_equal(out, untouched, sizeof out);
    free(val);
    free(bad);
}

static void test_cache_memory_only(void **state)
{
    (void)state;
    ragd_cfg cfg;
    ragd_err err = {0};
    assert_int_equal(cfg_defaults_set(&cfg, &err), RAGD_OK);
    cache_query *c = NULL;
    assert_int_equal(cache_query_new(&cfg, "local", "ragd-local-v1", 4, &c, &err), RAGD_OK);
    float v[4] = {1, 2, 3, 4}, out[4] = {0};
    assert_int_equal(cache_query_get(c, "hello world", 11, out), RAGD_CACHE_MISS);
    cache_query_put(c, "hello world", 11, v);
    assert_int_equal(cache_query_get(c, " hello   world ", 15, out), RAGD_CACHE_MEMORY);
    assert_memory_equal(out, v, sizeof v);
    cache_stats s;
    cache_stats_get(c, &s);
    assert_int_equal(s.memory_hits, 1);
    assert_int_equal(s.memory_misses, 1);
    assert_int_equal(s.memory_entries, 1);
    assert_int_equal(s.memory_capacity, 1024);
    assert_false(s.redis_configured);
    assert_string_equal(cache_layer_name(RAGD_CACHE_REDIS), "redis");
    assert_string_equal(cache_layer_name(RAGD_CACHE_MISS), "miss");
    cache_query_free(c);

    /* A malformed redis_url is a configuration error. */
    free(cfg.cache_redis_url);
    cfg.cache_redis_url = strdup("redis://host:notaport");
    c = NULL;
    assert_int_equal(cache_query_new(&cfg, "local", "m", 4, &c, &err), RAGD_ERR_CONFIG);
    assert_null(c);
    cache_query_free(NULL);
    cache_stats_get(NULL, &s);
    assert_int_equal(s.memory_hits, 0);
    cfg_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_tcp),
        cmocka_unit_test(test_url_unix),
        cmocka_unit_test(test_url_errors),
        cmocka_unit_test(test_normalise_and_key),
        cmocka_unit_test(test_lru),
        cmocka_unit_test(test_cache_memory_only),
        cmocka_unit_test(test_value_binding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
