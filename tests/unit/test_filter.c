/* SPDX-License-Identifier: MIT */
/*
 * test_filter.c - the OpenAI-style retrieval filter (src/retrieve_filter.c): parsing every
 * operator and the error messages that name the offending part, and evaluation against metadata,
 * tags, source prefixes and page numbers, including missing keys, numeric strings and arrays.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "ragd/filter.h"

static retrieve_filter *parse_ok(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (j == NULL) fail_msg("bad test JSON %s: %s", text, jerr.text);
    retrieve_filter *f = NULL;
    ragd_err err = {0};
    if (retrieve_filter_parse(j, "filters", &f, &err) != RAGD_OK)
        fail_msg("parse %s: %s", text, err.msg);
    json_decref(j);
    return f;
}

static void expect_parse_error(const char *text, const char *part)
{
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    if (j == NULL) fail_msg("bad test JSON %s", text);
    retrieve_filter *f = (retrieve_filter *)0x1;
    ragd_err err = {0};
    if (retrieve_filter_parse(j, "filters", &f, &err) != RAGD_ERR_INVALID)
        fail_msg("%s: parsed, want an error naming %s", text, part);
    if (strstr(err.msg, part) == NULL) fail_msg("%s: message %s does not name %s", text, err.msg,
                                                part);
    assert_ptr_equal(f, (retrieve_filter *)0x1); /* output untouched */
    json_decref(j);
}

typedef struct chunk {
    const char *source;
    const char *tags;
    const char *meta;
    int page;
} chunk;

static int matches(const char *filter, const chunk *c)
{
    retrieve_filter *f = parse_ok(filter);
    json_t *tags = json_loads(c->tags, 0, NULL), *meta = json_loads(c->meta, 0, NULL);
    int m = retrieve_filter_match(f, c->source, tags, meta, c->page);
    json_decref(tags);
    json_decref(meta);
    retrieve_filter_free(f);
    return m;
}

static void test_operators(void **state)
{
    (void)state;
    const chunk c = {"kb/en/refunds.md", "[\"billing\", \"faq\"]",
                     "{\"lang\": \"en\", \"year\": 2021, \"ystr\": \"2021\", \"draft\": false, "
                     "\"langs\": [\"en\", \"de\"], \"date\": \"2024-03-01\"}",
                     3};
    static const struct {
        const char *filter;
        int want;
    } cases[] = {
        {"{\"type\": \"eq\", \"key\": \"lang\", \"value\": \"en\"}", 1},
        {"{\"type\": \"eq\", \"key\": \"lang\", \"value\": \"fr\"}", 0},
        {"{\"type\": \"ne\", \"key\": \"lang\", \"value\": \"fr\"}", 1},
        {"{\"type\": \"ne\", \"key\": \"lang\", \"value\": \"en\"}", 0},
        {"{\"type\": \"gt\", \"key\": \"year\", \"value\": 2020}", 1},
        {"{\"type\": \"gt\", \"key\": \"year\", \"value\": 2021}", 0},
        {"{\"type\": \"gte\", \"key\": \"year\", \"value\": 2021}", 1},
        {"{\"type\": \"lt\", \"key\": \"year\", \"value\": 2021.5}", 1},
        {"{\"type\": \"lte\", \"key\": \"year\", \"value\": 2020}", 0},
        {"{\"type\": \"gte\", \"key\": \"ystr\", \"value\": 2021}", 1},  /* numeric string */
        {"{\"type\": \"eq\", \"key\": \"ystr\", \"value\": 2021.0}", 1},
        {"{\"type\": \"gt\", \"key\": \"date\", \"value\": \"2024-01-01\"}", 1}, /* strings */
        {"{\"type\": \"lt\", \"key\": \"lang\", \"value\": 5}", 0},       /* not comparable */
        {"{\"type\": \"in\", \"key\": \"lang\", \"value\": [\"fr\", \"en\"]}", 1},
        {"{\"type\": \"in\", \"key\": \"lang\", \"value\": []}", 0},
        {"{\"type\": \"nin\", \"key\": \"lang\", \"value\": [\"fr\", \"de\"]}", 1},
        {"{\"type\": \"nin\", \"key\": \"lang\", \"value\": [\"en\"]}", 0},
        {"{\"type\": \"eq\", \"key\": \"draft\", \"value\": false}", 1},
        {"{\"type\": \"eq\", \"key\": \"draft\", \"value\": 0}", 0},
        {"{\"type\": \"eq\", \"key\": \"langs\", \"value\": \"de\"}", 1},  /* array: contains */
        {"{\"type\": \"nin\", \"key\": \"langs\", \"value\": [\"de\"]}", 0},
        {"{\"type\": \"eq\", \"key\": \"missing\", \"value\": 1}", 0},
        {"{\"type\": \"ne\", \"key\": \"missing\", \"value\": 1}", 1},
        {"{\"type\": \"nin\", \"key\": \"missing\", \"value\": [1]}", 1},
        {"{\"type\": \"gt\", \"key\": \"missing\", \"value\": 1}", 0},
        {"{\"type\": \"eq\", \"key\": \"source\", \"value\": \"kb/en/\"}", 1},
        {"{\"type\": \"eq\", \"key\": \"source\", \"value\": \"kb/fr/\"}", 0},
        {"{\"type\": \"ne\", \"key\": \"source\", \"value\": \"kb/fr/\"}", 1},
        {"{\"type\": \"in\", \"key\": \"source\", \"value\": [\"x/\", \"kb/\"]}", 1},
        {"{\"type\": \"eq\", \"key\": \"tags\", \"value\": \"faq\"}", 1},
        {"{\"type\": \"ne\", \"key\": \"tags\", \"value\": \"faq\"}", 0},
        {"{\"type\": \"in\", \"key\": \"tags\", \"value\": [\"x\", \"billing\"]}", 1},
        {"{\"type\": \"nin\", \"key\": \"tags\", \"value\": [\"x\", \"y\"]}", 1},
        {"{\"type\": \"eq\", \"key\": \"page\", \"value\": 3}", 1},
        {"{\"type\": \"lt\", \"key\": \"page\", \"value\": 3}", 0},
        {"{\"type\": \"and\", \"filters\": [{\"type\": \"eq\", \"key\": \"lang\", \"value\": "
         "\"en\"}, {\"type\": \"gt\", \"key\": \"year\", \"value\": 2000}]}", 1},
        {"{\"type\": \"and\", \"filters\": [{\"type\": \"eq\", \"key\": \"lang\", \"value\": "
         "\"en\"}, {\"type\": \"gt\", \"key\": \"year\", \"value\": 2100}]}", 0},
        {"{\"type\": \"or\", \"filters\": [{\"type\": \"eq\", \"key\": \"lang\", \"value\": "
         "\"fr\"}, {\"type\": \"gt\", \"key\": \"year\", \"value\": 2000}]}", 1},
        {"{\"type\": \"or\", \"filters\": [{\"type\": \"eq\", \"key\": \"lang\", \"value\": "
         "\"fr\"}, {\"type\": \"and\", \"filters\": [{\"type\": \"eq\", \"key\": \"tags\", "
         "\"value\": \"nope\"}]}]}", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (matches(cases[i].filter, &c) != cases[i].want)
            fail_msg("%s: got %d, want %d", cases[i].filter, !cases[i].want, cases[i].want);
    /* no tags / metadata at all */
    const chunk bare = {"a.md", "[]", "{}", 0};
    assert_int_equal(matches("{\"type\": \"eq\", \"key\": \"tags\", \"value\": \"x\"}", &bare), 0);
    assert_int_equal(matches("{\"type\": \"ne\", \"key\": \"lang\", \"value\": \"x\"}", &bare), 1);
    assert_int_equal(matches("{\"type\": \"eq\", \"key\": \"page\", \"value\": 0}", &bare), 1);
}

static void test_parse_errors(void **state)
{
    (void)state;
    expect_parse_error("[1]", "filters: a filter must be an object");
    expect_parse_error("{\"key\": \"a\", \"value\": 1}", "filters.type");
    expect_parse_error("{\"type\": 1}", "filters.type");
    expect_parse_error("{\"type\": \"equals\", \"key\": \"a\", \"value\": 1}", "filters.type");
    expect_parse_error("{\"type\": \"eq\", \"value\": 1}", "filters.key");
    expect_parse_error("{\"type\": \"eq\", \"key\": \"\", \"value\": 1}", "filters.key");
    expect_parse_error("{\"type\": \"eq\", \"key\": \"a\"}", "filters.value");
    expect_parse_error("{\"type\": \"eq\", \"key\": \"a\", \"value\": null}", "filters.value");
    expect_parse_error("{\"type\": \"eq\", \"key\": \"a\", \"value\": [1]}", "filters.value");
    expect_parse_error("{\"type\": \"in\", \"key\": \"a\", \"value\": 1}", "filters.value");
    expect_parse_error("{\"type\": \"in\", \"key\": \"a\", \"value\": [1, {}]}",
                       "filters.value[1]");
    expect_parse_error("{\"type\": \"gte\", \"key\": \"a\", \"value\": false}", "filters.value");
    expect_parse_error("{\"type\": \"eq\", \"key\": \"a\", \"value\": 1, \"x\": 1}", "filters.x");
    expect_parse_error("{\"type\": \"lt\", \"key\": \"source\", \"value\": \"a\"}",
                       "filters.type");
    expect_parse_error("{\"type\": \"eq\", \"key\": \"tags\", \"value\": 3}", "filters.value");
    expect_parse_error("{\"type\": \"eq\", \"key\": \"page\", \"value\": \"3\"}",
                       "filters.value");
    expect_parse_error("{\"type\": \"and\"}", "filters.filters");
    expect_parse_error("{\"type\": \"and\", \"filters\": []}", "filters.filters");
    expect_parse_error("{\"type\": \"or\", \"filters\": {}}", "filters.filters");
    expect_parse_error("{\"type\": \"or\", \"filters\": [{\"type\": \"eq\", \"key\": \"a\", "
                       "\"value\": 1}, {\"type\": \"nope\"}]}",
                       "filters.filters[1].type");
    expect_parse_error("{\"type\": \"and\", \"filters\": [{\"type\": \"or\", \"filters\": "
                       "[{\"type\": \"eq\", \"key\": 5, \"value\": 1}]}]}",
                       "filters.filters[0].filters[0].key");
    expect_parse_error("{\"type\": \"and\", \"key\": \"a\", \"filters\": [{\"type\": \"eq\", "
                       "\"key\": \"a\", \"value\": 1}]}",
                       "filters.key");
    /* depth and size limits */
    char deep[2048] = "";
    for (int i = 0; i < RETRIEVE_FILTER_MAX_DEPTH; i++)
        strcat(deep, "{\"type\": \"and\", \"filters\": [");
    strcat(deep, "{\"type\": \"eq\", \"key\": \"a\", \"value\": 1}");
    for (int i = 0; i < RETRIEVE_FILTER_MAX_DEPTH; i++) strcat(deep, "]}");
    expect_parse_error(deep, "nested too deep");
    json_t *wide = json_array();
    for (int i = 0; i < RETRIEVE_FILTER_MAX_NODES + 1; i++)
        json_array_append_new(wide, json_pack("{s:s, s:s, s:i}", "type", "eq", "key", "a",
                                              "value", i));
    json_t *top = json_pack("{s:s, s:o}", "type", "or", "filters", wide);
    retrieve_filter *f = NULL;
    ragd_err err = {0};
    assert_int_equal(retrieve_filter_parse(top, "filters", &f, &err), RAGD_ERR_INVALID);
    assert_non_null(strstr(err.msg, "too many"));
    json_decref(top);
    retrieve_filter_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operators),
        cmocka_unit_test(test_parse_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
