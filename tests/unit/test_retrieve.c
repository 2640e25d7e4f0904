/* SPDX-License-Identifier: MIT */
/*
 * test_retrieve.c - unit tests for src/retrieve_fuse.c and src/retrieve_context.c: the FTS5 query
 * builder (table cases in tests/data/fts/<case>/{input,expected}: quotes, operators, non-ASCII,
 * stopwords), RRF and relative-score fusion, MMR, the coverage estimate and the clarifying
 * question, the token budgeter (sentence cuts, adjacent-chunk merging, numbering), intents, and
 * the prompt template renderer (the compiled-in template equals share/ragd/system_prompt.txt).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>
#include <dirent.h>

#include "ragd/ingest.h"
#include "ragd/rerank.h"
#include "ragd/retrieve.h"
#include "ragd/util.h"

static char *data_path(const char *rel)
{
    const char *base = getenv("RAGD_TEST_DATA");
    util_buf b = {0};
    util_buf_printf(&b, "%s/%s", base ? base : "tests/data", rel);
    return util_buf_steal(&b);
}

static char *slurp(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    ragd_err err = {0};
    if (util_file_read(path, 1 << 20, &data, &len, &err) != RAGD_OK) return NULL;
    return data;
}

/* ---- FTS query builder ---------------------------------------------------------------------- */

static void test_fts_table_cases(void **state)
{
    (void)state;
    char *dir = data_path("fts");
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    int cases = 0, failed = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        util_buf in = {0}, ex = {0};
        util_buf_printf(&in, "%s/%s/input", dir, de->d_name);
        util_buf_printf(&ex, "%s/%s/expected", dir, de->d_name);
        char *input = slurp(in.data), *expected = slurp(ex.data);
        assert_non_null(input);
        assert_non_null(expected);
        size_t n = strlen(expected);
        while (n > 0 && expected[n - 1] == '\n') expected[--n] = '\0';
        retrieve_terms t;
        ragd_err err = {0};
        assert_int_equal(retrieve_terms_split(input, strlen(input), &t, &err), RAGD_OK);
        char *m = retrieve_fts_match(&t);
        assert_non_null(m);
        if (strcmp(m, expected) != 0) {
            printf("case %s:\n  want: %s\n  got:  %s\n", de->d_name, expected, m);
            failed++;
        }
        cases++;
        free(m);
        retrieve_terms_free(&t);
        free(input);
        free(expected);
        util_buf_free(&in);
        util_buf_free(&ex);
    }
    closedir(d);
    free(dir);
    assert_true(cases >= 8);
    assert_int_equal(failed, 0);
}

/* tests/data/lexical/<case>/{input,expected}: the MATCH expression with lexical variants. */
static void test_lexical_table_cases(void **state)
{
    (void)state;
    char *dir = data_path("lexical");
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    int cases = 0, failed = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        util_buf in = {0}, ex = {0};
        util_buf_printf(&in, "%s/%s/input", dir, de->d_name);
        util_buf_printf(&ex, "%s/%s/expected", dir, de->d_name);
        char *input = slurp(in.data), *expected = slurp(ex.data);
        assert_non_null(input);
        assert_non_null(expected);
        size_t n = strlen(expected);
        while (n > 0 && expected[n - 1] == '\n') expected[--n] = '\0';
        n = strlen(input);
        while (n > 0 && input[n - 1] == '\n') input[--n] = '\0';
        retrieve_terms t;
        ragd_err err = {0};
        assert_int_equal(retrieve_terms_split(input, strlen(input), &t, &err), RAGD_OK);
        assert_int_equal(retrieve_terms_expand(input, strlen(input), &t, &err), RAGD_OK);
        char *m = retrieve_fts_match(&t);
        assert_non_null(m);
        if (strcmp(m, expected) != 0) {
            printf("case %s:\n  want: %s\n  got:  %s\n", de->d_name, expected, m);
            failed++;
        }
        /* the per-term expression (confidence) is the same group */
        for (size_t i = 0; i < t.count; i++) {
            char *e = retrieve_fts_term(&t, i);
            assert_non_null(e);
            assert_non_null(strstr(m, e));
            free(e);
        }
        cases++;
        free(m);
        retrieve_terms_free(&t);
        free(input);
        free(expected);
        util_buf_free(&in);
        util_buf_free(&ex);
    }
    closedir(d);
    free(dir);
    assert_true(cases >= 8);
    assert_int_equal(failed, 0);
}

/* The reranker's order, per-request switch and configuration checks (the HTTP side is tested
 * against tests/fake_rerank.py in tests/integration/test_rerank.py). */
static void test_rerank_order_and_config(void **state)
{
    (void)state;
    const double scores[] = {0.1, 0.9, 0.5, 0.9, -2.0};
    size_t order[5];
    retrieve_rerank_order(scores, 5, order);
    const size_t want[] = {1, 3, 2, 0, 4}; /* best first, ties keep their order */
    for (size_t i = 0; i < 5; i++) assert_int_equal(order[i], want[i]);

    ragd_cfg cfg;
    ragd_err err = {0};
    assert_int_equal(cfg_defaults_set(&cfg, &err), RAGD_OK);
    retrieve_reranker *r = (retrieve_reranker *)&cfg; /* any non-NULL value must be replaced */
    assert_int_equal(retrieve_reranker_new(&cfg, &r, &err), RAGD_OK);
    assert_null(r); /* provider none */
    assert_int_equal(retrieve_rerank_wanted(NULL, RAGD_RERANK_ON), 0);
    rerank_stats st;
    retrieve_reranker_stats(NULL, &st);
    assert_string_equal(st.provider, "none");

    assert_int_equal(cfg_key_set(&cfg, "rerank", "provider", "tei", "test", &err), RAGD_OK);
    assert_int_equal(cfg_key_set(&cfg, "rerank", "base_url", "ftp://x", "test", &err), RAGD_OK);
    assert_int_equal(retrieve_reranker_new(&cfg, &r, &err), RAGD_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "base_url"));
    memset(&err, 0, sizeof err);
    assert_int_equal(cfg_key_set(&cfg, "rerank", "base_url", "http://127.0.0.1:9/", "test", &err),
                     RAGD_OK);
    assert_int_equal(retrieve_reranker_new(&cfg, &r, &err), RAGD_OK);
    assert_non_null(r);
    assert_int_equal(retrieve_rerank_wanted(r, RAGD_RERANK_DEFAULT), 1);
    assert_int_equal(retrieve_rerank_wanted(r, RAGD_RERANK_OFF), 0);
    retrieve_reranker_stats(r, &st);
    assert_string_equal(st.provider, "tei");
    assert_int_equal(st.calls, 0);
    retrieve_reranker_free(r);
    retrieve_reranker_free(NULL);
    cfg_free(&cfg);
}

static void test_fts_phrase_quotes(void **state)
{
    (void)state;
    char *p = retrieve_fts_phrase("say \"hi\"");
    assert_string_equal(p, "\"say \"\"hi\"\"\"");
    free(p);
    p = retrieve_fts_phrase("");
    assert_string_equal(p, "\"\"");
    free(p);
}

static void test_terms_limits(void **state)
{
    (void)state;
    util_buf b = {0};
    for (int i = 0; i < 100; i++) util_buf_printf(&b, "word%d ", i);
    retrieve_terms t;
    ragd_err err = {0};
    assert_int_equal(retrieve_terms_split(b.data, b.len, &t, &err), RAGD_OK);
    assert_int_equal(t.count, RAGD_TERMS_MAX);
    assert_string_equal(t.items[0], "word0");
    retrieve_terms_free(&t);
    util_buf_free(&b);
    /* a 65-byte word is not a term (nothing that long is worth a phrase) */
    char longw[70];
    memset(longw, 'a', 65);
    longw[65] = '\0';
    assert_int_equal(retrieve_terms_split(longw, 65, &t, &err), RAGD_OK);
    assert_int_equal(t.count, 0);
    retrieve_terms_free(&t);
}

/* ---- fusion --------------------------------------------------------------------------------- */

static void test_rrf(void **state)
{
    (void)state;
    /* A: rank 1 vector only; B: rank 2 vector, rank 1 keyword; C: keyword rank 2 only */
    retrieve_cand c[3] = {
        {.id = 1, .vector_score = 0.9, .vector_rank = 1},
        {.id = 2, .vector_score = 0.5, .vector_rank = 2, .keyword_score = 7, .keyword_rank = 1},
        {.id = 3, .keyword_score = 3, .keyword_rank = 2},
    };
    retrieve_fuse_opts o = {.mode = RAGD_MODE_HYBRID, .fusion = RAGD_FUSION_RRF, .rrf_k = 60,
                            .vector_weight = 0.5};
    retrieve_fuse(c, 3, &o);
    assert_int_equal(c[0].id, 2); /* agreement wins */
    double top = 1.0 / 61.0;
    assert_true(fabs(c[0].score - (0.5 / 62 + 0.5 / 61) / top) < 1e-9);
    assert_int_equal(c[1].id, 1); /* rank 1 beats rank 2 at equal weight */
    assert_true(fabs(c[1].score - 0.5) < 1e-9);
    assert_int_equal(c[2].id, 3);
    /* rank 1 on both sides is exactly 1 */
    retrieve_cand d[1] = {{.id = 9, .vector_score = 0.3, .vector_rank = 1, .keyword_score = 2,
                           .keyword_rank = 1}};
    retrieve_fuse(d, 1, &o);
    assert_true(fabs(d[0].score - 1.0) < 1e-9);
    /* a keyword-heavy weight flips A and C */
    o.vector_weight = 0.2;
    retrieve_cand e[2] = {{.id = 1, .vector_score = 0.9, .vector_rank = 1},
                          {.id = 3, .keyword_score = 3, .keyword_rank = 2}};
    retrieve_fuse(e, 2, &o);
    assert_int_equal(e[0].id, 3);
}

static void test_relative(void **state)
{
    (void)state;
    retrieve_cand c[3] = {
        {.id = 1, .vector_score = 0.40, .vector_rank = 1},
        {.id = 2, .vector_score = 0.20, .vector_rank = 2, .keyword_score = 10, .keyword_rank = 1},
        {.id = 3, .vector_score = 0.30, .vector_rank = 3, .keyword_score = 4, .keyword_rank = 2},
    };
    retrieve_fuse_opts o = {.mode = RAGD_MODE_HYBRID, .fusion = RAGD_FUSION_RELATIVE,
                            .rrf_k = 60, .vector_weight = 0.5};
    retrieve_fuse(c, 3, &o);
    /* min-max: vector 1 -> 1, 2 -> 0, 3 -> 0.5; keyword 2 -> 1, 3 -> 0 */
    assert_int_equal(c[0].id, 1);
    assert_true(fabs(c[0].score - 0.5) < 1e-9);
    assert_int_equal(c[1].id, 2);
    assert_true(fabs(c[1].score - 0.5) < 1e-9); /* tie: lower id first */
    assert_int_equal(c[2].id, 3);
    assert_true(fabs(c[2].score - 0.25) < 1e-9);
    for (int i = 0; i < 3; i++) assert_true(c[i].score >= 0.0 && c[i].score <= 1.0);
}

static void test_single_modes(void **state)
{
    (void)state;
    retrieve_cand c[3] = {
        {.id = 1, .vector_score = 0.40, .vector_rank = 1},
        {.id = 2, .vector_score = 0.20, .vector_rank = 2, .keyword_score = 8, .keyword_rank = 1},
        {.id = 3, .keyword_score = 2, .keyword_rank = 2},
    };
    retrieve_fuse_opts o = {.mode = RAGD_MODE_VECTOR, .rrf_k = 60, .vector_weight = 0.5};
    retrieve_fuse(c, 3, &o);
    assert_int_equal(c[0].id, 1);
    assert_true(fabs(c[0].score - 0.40) < 1e-9); /* vector: the cosine itself */
    assert_true(c[2].score == 0.0);              /* not on the vector side */
    o.mode = RAGD_MODE_KEYWORD;
    retrieve_fuse(c, 3, &o);
    assert_int_equal(c[0].id, 2);
    assert_true(fabs(c[0].score - 1.0) < 1e-9); /* keyword: bm25 / best bm25 */
    assert_int_equal(c[1].id, 3);
    assert_true(fabs(c[1].score - 0.25) < 1e-9);
    assert_true(c[2].score == 0.0);
}

static void test_mode_names(void **state)
{
    (void)state;
    assert_int_equal(retrieve_mode_parse("hybrid"), RAGD_MODE_HYBRID);
    assert_int_equal(retrieve_mode_parse("keyword"), RAGD_MODE_KEYWORD);
    assert_int_equal(retrieve_mode_parse("vector"), RAGD_MODE_VECTOR);
    assert_int_equal(retrieve_mode_parse("Hybrid"), RAGD_MODE_DEFAULT);
    assert_int_equal(retrieve_mode_parse(NULL), RAGD_MODE_DEFAULT);
    assert_int_equal(retrieve_fusion_parse("rrf"), RAGD_FUSION_RRF);
    assert_int_equal(retrieve_fusion_parse("relative"), RAGD_FUSION_RELATIVE);
    assert_int_equal(retrieve_fusion_parse("sum"), RAGD_FUSION_DEFAULT);
    assert_string_equal(retrieve_mode_name(RAGD_MODE_KEYWORD), "keyword");
    assert_string_equal(retrieve_fusion_name(RAGD_FUSION_RRF), "rrf");
}

/* ---- diversity ------------------------------------------------------------------------------ */

static void test_mmr(void **state)
{
    (void)state;
    const char *texts[4] = {"refund policy thirty days money back",
                            "refund policy thirty days money back receipt",
                            "shipping customs duties international parcels",
                            "refund policy money back days"};
    double rel[4] = {1.0, 0.95, 0.6, 0.9};
    size_t order[4];
    /* relevance only: the given order */
    assert_int_equal(retrieve_mmr(rel, texts, 4, 4, 1.0, order), 4);
    assert_int_equal(order[0], 0);
    assert_int_equal(order[1], 1);
    assert_int_equal(order[2], 3);
    assert_int_equal(order[3], 2);
    /* with diversity the different text comes second */
    assert_int_equal(retrieve_mmr(rel, texts, 4, 2, 0.5, order), 2);
    assert_int_equal(order[0], 0);
    assert_int_equal(order[1], 2);
    assert_int_equal(retrieve_mmr(rel, texts, 4, 0, 0.5, order), 0);
    assert_true(fabs(retrieve_text_similarity("a b c", "c b a") - 1.0) < 1e-9);
    assert_true(retrieve_text_similarity("alpha beta", "gamma delta") == 0.0);
    assert_true(fabs(retrieve_text_similarity("alpha beta", "Alpha gamma") - 1.0 / 3.0) < 1e-9);
}

/* ---- confidence ----------------------------------------------------------------------------- */

static void test_coverage(void **state)
{
    (void)state;
    int64_t df[3] = {1, 50, 0};
    int all[3] = {1, 1, 1}, none[3] = {0, 0, 0}, rare_only[3] = {1, 0, 0},
        common_only[3] = {0, 1, 0};
    assert_true(fabs(retrieve_coverage(3, df, all, 100) - 1.0) < 1e-9);
    assert_true(retrieve_coverage(3, df, none, 100) == 0.0);
    double r = retrieve_coverage(3, df, rare_only, 100);
    double c = retrieve_coverage(3, df, common_only, 100);
    assert_true(r > c); /* a rare term weighs more than a common one */
    assert_true(r > 0.0 && r < 1.0);
    assert_true(retrieve_coverage(0, df, all, 100) < 0.0); /* no terms: nothing to judge */
    /* a term found nowhere weighs the most */
    int absent_missing[3] = {1, 1, 0};
    assert_true(retrieve_coverage(3, df, absent_missing, 100) < 0.5);
}

static void test_clarify(void **state)
{
    (void)state;
    retrieve_terms t;
    ragd_err err = {0};
    const char q[] = "refund policy for kubernetes clusters";
    assert_int_equal(retrieve_terms_split(q, strlen(q), &t, &err), RAGD_OK);
    assert_int_equal(t.count, 4);
    int missing[4] = {0, 0, 1, 1};
    const char *headings[3] = {"Refund policy > Exceptions", "", "Refund policy > Exceptions"};
    char *s = retrieve_clarify_build(&t, missing, headings, 3);
    assert_non_null(s);
    assert_non_null(strstr(s, "\"kubernetes\" or \"clusters\""));
    assert_non_null(strstr(s, "\"Refund policy > Exceptions\""));
    assert_null(strstr(strstr(s, "Exceptions") + 1, "Exceptions")); /* headings once */
    assert_non_null(strchr(s, '?'));
    free(s);
    int none[4] = {0, 0, 0, 0};
    s = retrieve_clarify_build(&t, none, NULL, 0);
    assert_non_null(s);
    assert_non_null(strstr(s, "rephrase"));
    free(s);
    retrieve_terms_free(&t);
}

/* ---- context -------------------------------------------------------------------------------- */

static store_hit hit_make(int64_t doc, int ordinal, const char *source, const char *heading,
                          const char *text, int64_t start)
{
    store_hit h = {0};
    h.document_id = doc;
    h.chunk_id = doc * 100 + ordinal;
    h.ordinal = ordinal;
    h.source = (char *)source;
    h.title = (char *)"Title";
    h.heading = (char *)heading;
    h.text = (char *)text;
    h.char_start = start;
    h.char_end = start + (int64_t)strlen(text);
    return h;
}

static void test_sentence_cut(void **state)
{
    (void)state;
    const char t[] = "First sentence here. Second one follows! Third? Last words without end";
    size_t n = strlen(t);
    assert_int_equal(retrieve_sentence_cut(t, n, 1000), n); /* all of it fits */
    size_t cut = retrieve_sentence_cut(t, n, 8);
    assert_true(cut > 0);
    assert_true(t[cut - 1] == '.' || t[cut - 1] == '!' || t[cut - 1] == '?');
    assert_true(ingest_tokens_count(t, cut) <= 8);
    assert_int_equal(retrieve_sentence_cut(t, n, 1), 0); /* not even one sentence */
    assert_int_equal(retrieve_sentence_cut(t, n, 0), 0);
    const char lines[] = "- item one\n- item two\n- item three";
    cut = retrieve_sentence_cut(lines, strlen(lines), 7);
    assert_true(cut > 0 && lines[cut] == '\n'); /* a line end is a boundary */
}

static void test_context_merge_and_budget(void **state)
{
    (void)state;
    /* doc 1 chunks 0 and 1 overlap by "shared tail. "; doc 2 stands alone */
    const char *t0 = "Alpha part one. shared tail.";
    const char *t1 = "shared tail. Beta part two.";
    store_hit h0 = hit_make(1, 0, "a.md", "A > One", t0, 0);
    store_hit h1 = hit_make(1, 1, "a.md", "A > One", t1, 16);
    store_hit h2 = hit_make(2, 0, "b.md", "", "Gamma alone.", 0);
    const store_hit *hits[3] = {&h1, &h2, &h0}; /* rank order: the later chunk first */
    retrieve_context c;
    ragd_err err = {0};
    assert_int_equal(retrieve_context_build(hits, 3, 2000, 1, &c, &err), RAGD_OK);
    assert_int_equal(c.source_count, 2);
    assert_string_equal(c.text, "[1] a.md > A > One\nAlpha part one. shared tail. Beta part two."
                                "\n\n[2] b.md\nGamma alone.");
    assert_int_equal(c.result_n[0], 1);
    assert_int_equal(c.result_n[1], 2);
    assert_int_equal(c.result_n[2], 1);
    assert_int_equal(c.sources[0].rank_count, 2);
    assert_int_equal(c.sources[0].ranks[0], 1);
    assert_int_equal(c.sources[0].ranks[1], 3);
    assert_ptr_equal(c.sources[0].hit, &h1);
    assert_true(c.tokens > 0);
    retrieve_context_free(&c);

    /* without merging: three blocks */
    assert_int_equal(retrieve_context_build(hits, 3, 2000, 0, &c, &err), RAGD_OK);
    assert_int_equal(c.source_count, 3);
    assert_non_null(strstr(c.text, "\n\n[3] a.md > A > One\nAlpha part one. shared tail."));
    retrieve_context_free(&c);

    /* a tight budget: the first passage is cut after a whole sentence, the rest left out */
    assert_int_equal(retrieve_context_build(hits, 3, 14, 1, &c, &err), RAGD_OK);
    assert_int_equal(c.source_count, 1);
    assert_true(c.sources[0].truncated);
    assert_true(c.tokens <= 14);
    size_t len = strlen(c.text);
    assert_true(c.text[len - 1] == '.');
    assert_int_equal(c.result_n[1], 0); /* b.md did not fit */
    retrieve_context_free(&c);

    /* no room for anything */
    assert_int_equal(retrieve_context_build(hits, 3, 3, 1, &c, &err), RAGD_OK);
    assert_int_equal(c.source_count, 0);
    assert_string_equal(c.text, "");
    retrieve_context_free(&c);
}

static void test_context_budget_skips_to_smaller(void **state)
{
    (void)state;
    util_buf big = {0};
    for (int i = 0; i < 200; i++) util_buf_puts(&big, "word ");
    util_buf_puts(&big, "end.");
    store_hit h0 = hit_make(1, 0, "a.md", "", "Short first.", 0);
    store_hit h1 = hit_make(2, 0, "big.md", "", big.data, 0); /* one unbreakable sentence */
    store_hit h2 = hit_make(3, 0, "c.md", "", "Short third.", 0);
    const store_hit *hits[3] = {&h0, &h1, &h2};
    retrieve_context c;
    ragd_err err = {0};
    assert_int_equal(retrieve_context_build(hits, 3, 60, 1, &c, &err), RAGD_OK);
    assert_int_equal(c.source_count, 2); /* the big one is left out, the third still fits */
    assert_string_equal(c.text, "[1] a.md\nShort first.\n\n[2] c.md\nShort third.");
    assert_int_equal(c.result_n[1], 0);
    assert_int_equal(c.result_n[2], 2);
    retrieve_context_free(&c);
    util_buf_free(&big);
}

/* ---- intents -------------------------------------------------------------------------------- */

static void test_intents(void **state)
{
    (void)state;
    retrieve_intent it;
    ragd_err err = {0};
    const char *spec = "search_info, policy_question:8:3000 billing:3";
    assert_int_equal(retrieve_intent_find(spec, "search_info", &it, &err), RAGD_OK);
    assert_true(it.retrieves && it.k == 0 && it.max_tokens == 0);
    assert_int_equal(retrieve_intent_find(spec, "policy_question", &it, &err), RAGD_OK);
    assert_true(it.retrieves && it.k == 8 && it.max_tokens == 3000);
    assert_int_equal(retrieve_intent_find(spec, "billing", &it, &err), RAGD_OK);
    assert_true(it.retrieves && it.k == 3 && it.max_tokens == 0);
    assert_int_equal(retrieve_intent_find(spec, "general_chat", &it, &err), RAGD_OK);
    assert_false(it.retrieves);
    assert_int_equal(retrieve_intent_find("", "search_info", &it, &err), RAGD_OK);
    assert_false(it.retrieves);
    static const char *const bad[] = {"a:x", "a:1:2:3", "a b:", "bad!name", "a:-1", ":5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ragd_err e2 = {0};
        assert_int_equal(retrieve_intent_find(bad[i], NULL, NULL, &e2), RAGD_ERR_CONFIG);
        assert_non_null(strstr(e2.msg, "intent entry"));
    }
}

/* ---- prompt --------------------------------------------------------------------------------- */

static void test_prompt_default_equals_file(void **state)
{
    (void)state;
    char *path = data_path("../../share/ragd/system_prompt.txt");
    char *file = slurp(path);
    assert_non_null(file);
    assert_string_equal(retrieve_prompt_default(), file);
    free(file);
    free(path);
}

static void test_prompt_render(void **state)
{
    (void)state;
    retrieve_prompt_vars v = {.persona = "Mathia", .tools = "search_orders, create_ticket",
                              .context = "[1] a.md\nText.", .sources = "[1] Title (a.md)",
                              .question = "q?", .clarify = "Which one?"};
    char *out = NULL;
    ragd_err err = {0};
    assert_int_equal(retrieve_prompt_render(retrieve_prompt_default(), &v, &out, &err), RAGD_OK);
    assert_non_null(strstr(out, "You are Mathia"));
    assert_non_null(strstr(out, "ground answers in the provided context; if it is insufficient, "
                                "say you don't know") ||
                    strstr(out, "Ground answers in the provided context; if it is insufficient, "
                                "say you don't know"));
    assert_non_null(strstr(out, "[1] a.md\nText."));
    assert_non_null(strstr(out, "- search_orders\n- create_ticket"));
    assert_null(strstr(out, "{{"));
    assert_null(strstr(out, "No internal document")); /* the no_context section is dropped */
    assert_null(strstr(out, "\n\n\n"));
    free(out);

    v.context = "";
    v.tools = " , ";
    assert_int_equal(retrieve_prompt_render(retrieve_prompt_default(), &v, &out, &err), RAGD_OK);
    assert_non_null(strstr(out, "No internal document"));
    assert_non_null(strstr(out, "Which one?"));
    assert_non_null(strstr(out, "You have no tools"));
    assert_null(strstr(out, "Context (each passage"));
    free(out);

    v.context = "ctx";
    assert_int_equal(retrieve_prompt_render("A{{#has_context}}\nB {{context}}\n{{/has_context}}"
                                            "{{#no_context}}\nC\n{{/no_context}}D {{question}}",
                                            &v, &out, &err),
                     RAGD_OK);
    assert_string_equal(out, "AB ctx\nD q?\n");
    free(out);

    static const char *const bad[] = {"{{nope}}", "{{#has_context}}x", "{{/has_tools}}",
                                      "{{#has_context}}{{/no_context}}", "{{persona",
                                      "{{#maybe}}x{{/maybe}}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ragd_err e2 = {0};
        out = NULL;
        assert_int_equal(retrieve_prompt_render(bad[i], &v, &out, &e2), RAGD_ERR_INVALID);
        assert_null(out);
        assert_non_null(strstr(e2.msg, "prompt template"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fts_table_cases),
        cmocka_unit_test(test_fts_phrase_quotes),
        cmocka_unit_test(test_lexical_table_cases),
        cmocka_unit_test(test_rerank_order_and_config),
        cmocka_unit_test(test_terms_limits),
        cmocka_unit_test(test_rrf),
        cmocka_unit_test(test_relative),
        cmocka_unit_test(test_single_modes),
        cmocka_unit_test(test_mode_names),
        cmocka_unit_test(test_mmr),
        cmocka_unit_test(test_coverage),
        cmocka_unit_test(test_clarify),
        cmocka_unit_test(test_sentence_cut),
        cmocka_unit_test(test_context_merge_and_budget),
        cmocka_unit_test(test_context_budget_skips_to_smaller),
        cmocka_unit_test(test_intents),
        cmocka_unit_test(test_prompt_default_equals_file),
        cmocka_unit_test(test_prompt_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
