/* SPDX-License-Identifier: MIT */
/*
 * test_chat.c - the pure parts of the chat turn (src/chat.c): the [chat] configuration checks,
 * the model route by flag and intent, per-model windows, request validation, the history-aware
 * query, the budget planner, the tool-call guards (whole and streamed), cited tags, and a
 * streamed answer passed through the filter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ragd/cfg.h"
#include "ragd/chat.h"

static ragd_cfg *cfg_new(void)
{
    ragd_cfg *cfg = calloc(1, sizeof *cfg);
    ragd_err err = {0};
    assert_non_null(cfg);
    assert_int_equal(cfg_defaults_set(cfg, &err), RAGD_OK);
    return cfg;
}

static void cfg_done(ragd_cfg *cfg)
{
    cfg_free(cfg);
    free(cfg);
}

static void set(ragd_cfg *cfg, const char *key, const char *value)
{
    ragd_err err = {0};
    assert_int_equal(cfg_key_set(cfg, "chat", key, value, "test", &err), RAGD_OK);
}

static void test_list_has(void **state)
{
    (void)state;
    assert_true(chat_list_has("general_chat, intent_parse", "intent_parse"));
    assert_true(chat_list_has("a,b c", "c"));
    assert_false(chat_list_has("general_chat", "general"));
    assert_false(chat_list_has("", "x"));
    assert_false(chat_list_has("x", NULL));
}

static void test_route_pick(void **state)
{
    (void)state;
    ragd_cfg *cfg = cfg_new();
    set(cfg, "model", "base");
    set(cfg, "finetuned_model", "ft");
    set(cfg, "finetuned_base_url", "http://lora:8000/v1");
    chat_route r;
    chat_route_pick(cfg, "general_chat", "caller", &r);
    assert_string_equal(r.model, "base"); /* flag off: the base model, caller ignored */
    assert_false(r.finetuned);
    set(cfg, "use_finetuned", "true");
    chat_route_pick(cfg, "general_chat", NULL, &r);
    assert_string_equal(r.model, "ft");
    assert_string_equal(r.base_url, "http://lora:8000/v1");
    assert_true(r.finetuned);
    chat_route_pick(cfg, "search_info", NULL, &r); /* not in finetuned_intents */
    assert_string_equal(r.model, "base");
    assert_string_equal(r.base_url, "https://api.openai.com/v1");
    set(cfg, "allow_caller_model", "true");
    chat_route_pick(cfg, "search_info", "caller", &r);
    assert_string_equal(r.model, "caller");
    cfg_done(cfg);
}

static void test_windows_and_checks(void **state)
{
    (void)state;
    ragd_cfg *cfg = cfg_new();
    ragd_err err = {0};
    set(cfg, "context_windows", "gpt-4o:128000, llama3:8b:8192");
    assert_int_equal(chat_window_for(cfg, "gpt-4o"), 128000);
    assert_int_equal(chat_window_for(cfg, "llama3:8b"), 8192);
    assert_int_equal(chat_window_for(cfg, "other"), 8192);
    assert_int_equal(chat_cfg_check(cfg, &err), RAGD_OK);
    set(cfg, "context_windows", "gpt-4o=1000");
    assert_int_equal(chat_cfg_check(cfg, &err), RAGD_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "context_windows"));
    set(cfg, "context_windows", "");
    set(cfg, "use_finetuned", "true");
    ragd_err_clear(&err);
    assert_int_equal(chat_cfg_check(cfg, &err), RAGD_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "finetuned_model"));
    set(cfg, "use_finetuned", "false");
    set(cfg, "reserve_tokens", "9000");
    ragd_err_clear(&err);
    assert_int_equal(chat_cfg_check(cfg, &err), RAGD_ERR_CONFIG);
    set(cfg, "reserve_tokens", "100");
    set(cfg, "base_url", "ftp://x");
    ragd_err_clear(&err);
    assert_int_equal(chat_cfg_check(cfg, &err), RAGD_ERR_CONFIG);
    cfg_done(cfg);
}

static void test_request_parse(void **state)
{
    (void)state;
    ragd_cfg *cfg = cfg_new();
    ragd_err err = {0};
    assert_int_equal(cfg_key_set(cfg, "prompt", "tools", "lookup", "test", &err), RAGD_OK);
    chat_request r;
    const char *code = NULL;
    const char *ok = "{\"model\":\"m\",\"intent\":\"search_info\",\"collection\":\"hr\","
                     "\"filters\":{\"source\":\"docs/\"},\"temperature\":0.3,"
                     "\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
                     "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]},"
                     "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[]},"
                     "{\"role\":\"user\",\"content\":\"q\"}],"
                     "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"lookup\"}}]}";
    assert_int_equal(chat_request_parse(cfg, ok, strlen(ok), "hdr", NULL, &r, &code, &err),
                     RAGD_OK);
    assert_string_equal(r.intent, "search_info"); /* the body wins over the header */
    assert_string_equal(r.collection, "hr");
    assert_string_equal(r.source_prefix, "docs/");
    assert_int_equal(r.last_user, 3);
    assert_null(json_object_get(r.root, "intent"));  /* ragd's own fields are taken out */
    assert_null(json_object_get(r.root, "filters"));
    assert_non_null(json_object_get(r.root, "temperature")); /* the rest passes through */
    chat_request_free(&r);

    const char *bad_tool = "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
                           "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"rm\"}}]}";
    ragd_err_clear(&err);
    assert_int_equal(chat_request_parse(cfg, bad_tool, strlen(bad_tool), NULL, NULL, &r, &code,
                                        &err), RAGD_ERR_INVALID);
    assert_string_equal(code, "tool_not_allowed");
    static const char *const bad[] = {
        "{}", "[]", "{\"messages\":[]}", "{\"messages\":[{\"role\":\"user\"}]}",
        "{\"messages\":[{\"role\":\"bot\",\"content\":\"x\"}]}",
        "{\"messages\":[{\"role\":\"assistant\",\"content\":\"x\"}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"filters\":{\"nope\":1}}",
        "{\"messages\":[{\"role\":\"user\",\"content\":[1]}]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ragd_err_clear(&err);
        assert_int_equal(chat_request_parse(cfg, bad[i], strlen(bad[i]), NULL, NULL, &r, &code,
                                            &err), RAGD_ERR_INVALID);
    }
    cfg_done(cfg);
}

static void test_query_build(void **state)
{
    (void)state;
    ragd_cfg *cfg = cfg_new();
    json_t *m = json_loads("[{\"role\":\"user\",\"content\":\"refund window for orders\"},"
                           "{\"role\":\"assistant\",\"content\":\"30 days\"},"
                           "{\"role\":\"user\",\"content\":\"shipping to Canada costs per heavy parcel\"},"
                           "{\"role\":\"assistant\",\"content\":\"...\"},"
                           "{\"role\":\"user\",\"content\":\"and for EU customers?\"}]", 0, NULL);
    int turns = -1;
    char *q = chat_query_build(cfg, m, 4, &turns);
    assert_string_equal(q, "refund window for orders shipping to Canada costs per heavy parcel and for EU "
                           "customers?");
    assert_int_equal(turns, 2);
    free(q);
    set(cfg, "history_query_turns", "1");
    q = chat_query_build(cfg, m, 4, &turns);
    assert_string_equal(q, "shipping to Canada costs per heavy parcel and for EU customers?");
    free(q);
    q = chat_query_build(cfg, m, 2, &turns); /* enough terms alone */
    assert_string_equal(q, "shipping to Canada costs per heavy parcel");
    assert_int_equal(turns, 0);
    free(q);
    json_decref(m);
    cfg_done(cfg);
}

static void test_budget_plan(void **state)
{
    (void)state;
    chat_budget b;
    int hist[] = {100, 100, 100, 100};
    chat_budget_plan(1000, 200, hist, 4, 300, 100, &b); /* everything fits */
    assert_int_equal(b.context_budget, 300);
    assert_int_equal(b.history_dropped, 0);
    chat_budget_plan(850, 200, hist, 4, 300, 100, &b); /* the context is cut first */
    assert_int_equal(b.context_budget, 250);
    assert_int_equal(b.history_dropped, 0);
    chat_budget_plan(600, 200, hist, 4, 300, 100, &b); /* then history, oldest first */
    assert_int_equal(b.history_dropped, 1);
    assert_int_equal(b.history_tokens_dropped, 100);
    assert_int_equal(b.context_budget, 100); /* 600 - 200 - 300 */
    assert_false(b.over);
    chat_budget_plan(500, 200, hist, 4, 300, 100, &b);
    assert_int_equal(b.history_dropped, 2);
    assert_int_equal(b.context_budget, 100);
    chat_budget_plan(250, 200, hist, 4, 300, 100, &b); /* then the context further */
    assert_int_equal(b.history_dropped, 4);
    assert_int_equal(b.context_budget, 50);
    chat_budget_plan(150, 200, hist, 4, 300, 100, &b); /* the fixed part alone is over */
    assert_true(b.over);
    assert_int_equal(b.context_budget, 0);
    assert_int_equal(b.history_dropped, 4);
}

static void test_tool_filters(void **state)
{
    (void)state;
    json_t *msg = json_loads("{\"role\":\"assistant\",\"tool_calls\":["
                             "{\"id\":\"a\",\"function\":{\"name\":\"evil\"}},"
                             "{\"id\":\"b\",\"function\":{\"name\":\"lookup\"}}],"
                             "\"function_call\":{\"name\":\"evil2\"}}", 0, NULL);
    assert_int_equal(chat_tool_calls_filter(msg, "lookup, ticket"), 2);
    assert_int_equal(json_array_size(json_object_get(msg, "tool_calls")), 1);
    assert_null(json_object_get(msg, "function_call"));
    assert_int_equal(chat_tool_calls_filter(msg, ""), 1);
    assert_null(json_object_get(msg, "tool_calls"));
    json_decref(msg);

    chat_tool_stream st = {0};
    json_t *d1 = json_loads("{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"evil\","
                            "\"arguments\":\"\"}},{\"index\":1,\"function\":{\"name\":\"lookup\","
                            "\"arguments\":\"\"}}]}", 0, NULL);
    json_t *d2 = json_loads("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{}\"}},"
                            "{\"index\":1,\"function\":{\"arguments\":\"{}\"}}]}", 0, NULL);
    assert_int_equal(chat_tool_delta_filter(d1, "lookup", &st), 1);
    assert_int_equal(chat_tool_delta_filter(d2, "lookup", &st), 0);
    json_t *calls = json_object_get(d2, "tool_calls");
    assert_int_equal(json_array_size(calls), 1); /* evil's argument fragment is dropped */
    assert_int_equal(json_integer_value(json_object_get(json_array_get(calls, 0), "index")), 0);
    json_decref(d1);
    json_decref(d2);
}

static void test_cited_and_sources(void **state)
{
    (void)state;
    assert_int_equal(chat_cited_tags("a [1] b [3][2] c [9] [x] [0]", 3), 0x7);
    assert_int_equal(chat_cited_tags("none", 3), 0);
    assert_int_equal(chat_cited_tags("[12345]", 3), 0);
    assert_true(chat_has_sources_section("text\n\n**Sources**\n[1] a"));
    assert_true(chat_has_sources_section("text\n## Sources\n"));
    assert_false(chat_has_sources_section("the sources say [1]"));
}

static void test_stream_filter(void **state)
{
    (void)state;
    chat_plan p = {0};
    snprintf(p.route.model, sizeof p.route.model, "m");
    p.tools = "lookup";
    chat_stream s;
    chat_stream_init(&s, &p);
    util_buf out = {0};
    const char *e1 = "{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
                     "\"delta\":{\"content\":\"hi \"},\"finish_reason\":null}]}";
    const char *e2 = "{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
                     "\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"evil\"}}]},"
                     "\"finish_reason\":null}]}";
    const char *e3 = "{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
                     "\"delta\":{},\"finish_reason\":\"tool_calls\"}]}";
    assert_int_equal(chat_stream_event(&s, e1, strlen(e1), &out), 0);
    assert_int_equal(chat_stream_event(&s, e2, strlen(e2), &out), 0);
    assert_int_equal(chat_stream_event(&s, e3, strlen(e3), &out), 0);
    assert_int_equal(chat_stream_event(&s, "[DONE]", 6, &out), 0);
    assert_true(s.done);
    assert_int_equal(chat_stream_end(&s, &out), 0);
    assert_null(strstr(out.data, "evil"));
    assert_non_null(strstr(out.data, "\"finish_reason\":\"stop\""));
    assert_non_null(strstr(out.data, "\"tool_calls_blocked\":1"));
    assert_non_null(strstr(out.data, "data: [DONE]\n\n"));
    assert_int_equal(s.blocked, 1);
    util_buf_free(&out);
    assert_int_equal(chat_stream_event(&s, "{not json", 9, &out), -1);
    assert_non_null(strstr(out.data, "\"error\""));
    util_buf_free(&out);
    chat_stream_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_has),
        cmocka_unit_test(test_route_pick),
        cmocka_unit_test(test_windows_and_checks),
        cmocka_unit_test(test_request_parse),
        cmocka_unit_test(test_query_build),
        cmocka_unit_test(test_budget_plan),
        cmocka_unit_test(test_tool_filters),
        cmocka_unit_test(test_cited_and_sources),
        cmocka_unit_test(test_stream_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
