/* SPDX-License-Identifier: MIT */
/*
 * test_embed.c - unit tests for the embedding providers: the local feature-hashing embedder
 * (determinism, normalisation, dims, stemming, relatedness) and the provider layer (selection
 * from the configuration, batch splitting, free(NULL)).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/embed_int.h"
#include "ragd/embed.h"
#include "ragd/ingest.h"

#define DIMS 512

static double dot(const float *a, const float *b, int dims)
{
    double s = 0.0;
    for (int i = 0; i < dims; i++) s += (double)a[i] * b[i];
    return s;
}

static double cosine_of(const char *x, const char *y)
{
    float a[DIMS], b[DIMS];
    embed_local_vector(x, strlen(x), DIMS, a);
    embed_local_vector(y, strlen(y), DIMS, b);
    return dot(a, b, DIMS);
}

static int all_zero(const float *v, int dims)
{
    for (int i = 0; i < dims; i++)
        if (v[i] != 0.0f) return 0;
    return 1;
}

typedef struct term_sink {
    size_t calls;
    char first[RAGD_EMBED_WORD_MAX + 1];
    char stem[RAGD_EMBED_WORD_MAX + 1]; /* the last term */
} term_sink;

static void sink_term(void *ctx, uint64_t term, const char *stem, size_t len)
{
    term_sink *s = ctx;
    (void)term;
    assert_true(len <= RAGD_EMBED_WORD_MAX);
    memcpy(s->stem, stem, len);
    s->stem[len] = '\0';
    if (s->calls == 0) memcpy(s->first, s->stem, len + 1);
    s->calls++;
}

/* FNV-1a over the vector's bytes: a fingerprint to pin the algorithm. */
static uint64_t vector_fingerprint(const float *v, int dims)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    const unsigned char *b = (const unsigned char *)v;
    for (size_t i = 0; i < (size_t)dims * sizeof(float); i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static const char *policy_text =
    "# Refund policy\n\nCustomers can request a refund within 30 days of purchase. Refunds are "
    "issued to the original payment method once the returned item has been inspected.";

static void test_deterministic(void **state)
{
    (void)state;
    float a[DIMS], b[DIMS];
    embed_local_vector(policy_text, strlen(policy_text), DIMS, a);
    embed_local_vector(policy_text, strlen(policy_text), DIMS, b);
    assert_memory_equal(a, b, sizeof a);
    assert_false(all_zero(a, DIMS));
    /* A copy at another address (and with trailing bytes outside len) embeds the same. */
    char *copy = malloc(strlen(policy_text) + 8);
    assert_non_null(copy);
    memcpy(copy, policy_text, strlen(policy_text));
    memcpy(copy + strlen(policy_text), " extra!", 8);
    embed_local_vector(copy, strlen(policy_text), DIMS, b);
    free(copy);
    assert_memory_equal(a, b, sizeof a);
}

static void test_fingerprint_stable(void **state)
{
    (void)state;
    /* Pins ragd-local-v1: if this changes, stored vectors are stale and the model name must
     * change with it. Rounded to 1e-4 so the check survives harmless float reordering. */
    float v[DIMS];
    embed_local_vector(policy_text, strlen(policy_text), DIMS, v);
    for (int i = 0; i < DIMS; i++) v[i] = roundf(v[i] * 1e4f) / 1e4f;
    uint64_t fp = vector_fingerprint(v, DIMS);
    float w[DIMS];
    embed_local_vector("refund", 6, DIMS, w);
    int nonzero = 0;
    for (int i = 0; i < DIMS; i++) nonzero += w[i] != 0.0f;
    /* "refund": 1 unigram + 3+4+5-gram counts of "<refund>" (6+5+4) = 16 features at most. */
    assert_in_range(nonzero, 10, 16);
    if (fp != 0x0aa584e862c3af2bULL)
        fprintf(stderr, "fingerprint now %016llx\n", (unsigned long long)fp);
    assert_true(fp == 0x0aa584e862c3af2bULL);
}

static void test_unit_norm(void **state)
{
    (void)state;
    const char *texts[] = {policy_text, "refund", "Straße café naïve 東京 データ",
                           "x", "don't panic: it's fine"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        float v[DIMS];
        embed_local_vector(texts[i], strlen(texts[i]), DIMS, v);
        assert_true(fabs(sqrt(dot(v, v, DIMS)) - 1.0) < 1e-5);
    }
}

static void test_empty_and_stopwords_zero(void **state)
{
    (void)state;
    float v[DIMS];
    for (int i = 0; i < DIMS; i++) v[i] = 7.0f;
    embed_local_vector("", 0, DIMS, v);
    assert_true(all_zero(v, DIMS));
    embed_local_vector(NULL, 0, DIMS, v);
    assert_true(all_zero(v, DIMS));
    const char *stop = "The and of it is to be, or NOT to be -- that is what it was!";
    embed_local_vector(stop, strlen(stop), DIMS, v);
    assert_true(all_zero(v, DIMS));
    const char *punct = "  ## --- *** `` \n\n ... \xe2\x80\x94 \xc2\xa0 ";
    embed_local_vector(punct, strlen(punct), DIMS, v);
    assert_true(all_zero(v, DIMS));
}

static void test_dims_respected(void **state)
{
    (void)state;
    const int dims_list[] = {64, 100, 384, 1024, 4096};
    for (size_t k = 0; k < sizeof dims_list / sizeof dims_list[0]; k++) {
        int dims = dims_list[k];
        float *v = malloc(((size_t)dims + 1) * sizeof *v);
        assert_non_null(v);
        v[dims] = 42.0f; /* sentinel: must not be written */
        embed_local_vector(policy_text, strlen(policy_text), dims, v);
        assert_true(v[dims] == 42.0f);
        assert_true(fabs(sqrt(dot(v, v, dims)) - 1.0) < 1e-5);
        free(v);
    }
}

static void test_related_beats_unrelated(void **state)
{
    (void)state;
    const char *question = "How do refunds work if I return an item?";
    const char *recipe = "# Tomato soup\n\nChop the onions, simmer the tomatoes with garlic and "
                         "basil for twenty minutes, then blend until smooth.";
    double related = cosine_of(policy_text, question);
    double unrelated = cosine_of(recipe, question);
    assert_true(related > unrelated + 0.1);
    assert_true(cosine_of(policy_text, recipe) < related);
}

static void test_stemming(void **state)
{
    (void)state;
    /* Single words: equal stems give identical unigram features, so high similarity. */
    assert_true(cosine_of("refunds", "refund") > 0.75);
    assert_true(cosine_of("refunded", "refund") > 0.7);
    assert_true(cosine_of("policies", "policy") > 0.7);
    assert_true(cosine_of("configuring", "configure") > 0.7);
    assert_true(cosine_of("embeddings", "embedded") > 0.6);
    assert_true(cosine_of("refunds", "kitchen") < 0.2);

    /* The stems themselves, through the tokenizer the BM25 baseline uses. */
    embed_local_params p;
    embed_local_params_default(&p, DIMS);
    static const struct {
        const char *word, *stem;
    } cases[] = {
        {"refunds", "refund"},    {"refunded", "refund"},    {"refunding", "refund"},
        {"policies", "policy"},   {"queries", "query"},      {"boxes", "box"},
        {"classes", "class"},     {"status", "status"},      {"analysis", "analysis"},
        {"used", "us"},           {"using", "us"},           {"uses", "us"},
        {"stopped", "stop"},      {"installed", "install"},  {"string", "string"},
        {"needed", "need"},       {"speed", "speed"},        {"deployment", "deploy"},
        {"directly", "direct"},   {"apply", "apply"},        {"ragd's", "ragd"},
        {"Settings", "set"},      {"embedding", "embed"},    {"tries", "try"},
        {"configured", "configur"}, {"DON\xe2\x80\x99T", "don't"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        term_sink sink = {0};
        p.stopwords = 0; /* "don't" is a stopword; check the apostrophe handling itself */
        embed_local_terms_each(cases[i].word, strlen(cases[i].word), &p, sink_term, &sink);
        assert_int_equal(sink.calls, 1);
        assert_string_equal(sink.stem, cases[i].stem);
    }
}

static void test_tokenizer_terms(void **state)
{
    (void)state;
    embed_local_params p;
    embed_local_params_default(&p, DIMS);
    term_sink sink = {0};
    const char *text = "The max_tokens setting, and re-index: it's the café\xe2\x80\x94" "fine.";
    embed_local_terms_each(text, strlen(text), &p, sink_term, &sink);
    /* max, tokens, setting, re, index, café, fine ("the", "and", "it's" are stopwords). */
    assert_int_equal(sink.calls, 7);
    assert_string_equal(sink.stem, "fin");
    assert_string_equal(sink.first, "max");
    /* Without stemming and stopwords every word is a term, as written (lower-cased). */
    p.stem = 0;
    p.stopwords = 0;
    memset(&sink, 0, sizeof sink);
    embed_local_terms_each(text, strlen(text), &p, sink_term, &sink);
    assert_int_equal(sink.calls, 11);
    assert_string_equal(sink.first, "the");
    assert_string_equal(sink.stem, "fine");
}

static void test_camel_case_parts(void **state)
{
    (void)state;
    embed_local_params p;
    embed_local_params_default(&p, DIMS);
    p.stem = 0;
    term_sink sink = {0};
    const char *text = "readFileSync HTTPServer";
    embed_local_terms_each(text, strlen(text), &p, sink_term, &sink);
    /* readfilesync read file sync httpserver http server */
    assert_int_equal(sink.calls, 7);
    assert_string_equal(sink.first, "readfilesync");
    assert_string_equal(sink.stem, "server");
    p.split_camel = 0;
    memset(&sink, 0, sizeof sink);
    embed_local_terms_each(text, strlen(text), &p, sink_term, &sink);
    assert_int_equal(sink.calls, 2);
    assert_string_equal(sink.stem, "httpserver");
    /* So an identifier meets the words it is made of. */
    assert_true(cosine_of("fs.readFile(path)", "read a file") > cosine_of("fs.stat(path)",
                                                                          "read a file"));
}

static void test_variants(void **state)
{
    (void)state;
    const char *short_text = "refund policy";
    embed_local_params p;
    float a[DIMS], b[DIMS];

    /* Another salt moves features to other dimensions: a different, still unit vector. */
    embed_local_params_default(&p, DIMS);
    embed_local_vector_params(policy_text, strlen(policy_text), &p, a);
    p.salt = 12345;
    embed_local_vector_params(policy_text, strlen(policy_text), &p, b);
    assert_memory_not_equal(a, b, sizeof a);
    assert_true(fabs(sqrt(dot(b, b, DIMS)) - 1.0) < 1e-5);

    /* Sublinear char n-gram counts: unit norm, different vector. */
    embed_local_params_default(&p, DIMS);
    p.char_sublinear = !p.char_sublinear;
    embed_local_vector_params(policy_text, strlen(policy_text), &p, b);
    assert_memory_not_equal(a, b, sizeof a);
    assert_true(fabs(sqrt(dot(b, b, DIMS)) - 1.0) < 1e-5);

    /* Length prior: dimension 0 holds b(L), larger for the longer text, and the vector stays
     * unit length. */
    embed_local_params_default(&p, DIMS);
    p.length_weight = 0.6f;
    p.length_pivot = 2.0f;
    assert_true(embed_local_params_valid(&p));
    embed_local_vector_params(policy_text, strlen(policy_text), &p, a);
    embed_local_vector_params(short_text, strlen(short_text), &p, b);
    assert_true(a[0] > b[0]);
    assert_true(b[0] > 0.0f && a[0] < 0.6f);
    assert_true(fabs(sqrt(dot(a, a, DIMS)) - 1.0) < 1e-5);
    assert_true(fabs(sqrt(dot(b, b, DIMS)) - 1.0) < 1e-5);
    /* Stopword-only text stays all zero even with the prior. */
    embed_local_vector_params("the of and", 10, &p, a);
    assert_true(all_zero(a, DIMS));
    p.length_weight = 0.95f;
    assert_false(embed_local_params_valid(&p));
}

static void test_long_and_huge_texts(void **state)
{
    (void)state;
    /* A word longer than RAGD_EMBED_WORD_MAX, and a text big enough to grow the feature table. */
    size_t n = 400000;
    char *big = malloc(n + 1);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++) big[i] = 'a' + (char)((i * 7919u / 3u) % 26u);
    for (size_t i = 0; i < n; i += 9) big[i] = ' ';
    memset(big + 1000, 'q', 200); /* one 200-byte word */
    big[n] = '\0';
    float v[DIMS];
    embed_local_vector(big, n, DIMS, v);
    assert_true(fabs(sqrt(dot(v, v, DIMS)) - 1.0) < 1e-5);
    float w[DIMS];
    embed_local_vector(big, n, DIMS, w);
    assert_memory_equal(v, w, sizeof v);
    free(big);
}

/* ---- bit identity: vectors pinned exactly (the word cache must not change one bit) -------- */

/* Fixed texts: ASCII prose, UTF-8 (accents, CJK, U+2019 apostrophes, U+00A0, dashes),
 * camelCase and acronyms, possessives, numbers, stopwords only, words past RAGD_EMBED_WORD_MAX,
 * empty, one byte, and repeated words (the cache's hits). */
static const char *const golden_texts[] = {
    "",
    "a",
    "the of and to in is it",
    "Refund policy: customers can request a refund within 30 days of purchase.",
    "readFile HTTPServer parseJSONValue getURLForID x86_64 IPv6Address fooBarBazQuxQuuxCorgeGrault",
    "ragd's daemon's users' it's don't won't O'Reilly rock'n'roll ''quoted'' 's",
    "caf\xc3\xa9 na\xc3\xafve r\xc3\xa9sum\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e Stra\xc3\x9f" "e "
    "don\xe2\x80\x99t ragd\xe2\x80\x99s a\xc2\xa0" "b em\xe2\x80\x94" "dash \xe2\x80\x9cquoted\xe2\x80\x9d",
    "0 1 42 3.14159 2026-12-05 0xdeadbeef 1e10 v1.2.3 100k 9999999999999999999999",
    "configure configured configuring configures uses used using policies studied agreed "
    "running hopping quickly happily management statement ies ing ed",
    "https://example.com/a/very/long/path/with/many/segments/and/a/query?x=1&y=2&z=3#fragment "
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "
    "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855e3b0c44298fc1c",
    "\xff\xfe broken \xc3 utf8 \xe2\x80 tail \xf0\x9f\x98\x80 emoji \xe2",
    "word word word word word word Word WORD wOrD words wording worded",
    /* "files" alone is stemmed; as a part of a word with non-ASCII bytes it is not */
    "Files r\xc3\xa9sumeFiles Files files runningFiles r\xc3\xa9sumeFiles",
    "## Heading\n\n- list item one\n- list item two\n\n```c\nint main(void) { return 0; }\n```\n"
    "| a | b |\n|---|---|\n| 1 | 2 |\n",
};

/* Appends a deterministic pseudo-random document of about n bytes to buf (words from a small
 * vocabulary, so most repeat). Returns: the length written. */
static size_t golden_generate(char *buf, size_t n, uint32_t seed)
{
    static const char *const vocab[] = {
        "index", "vector", "the", "store's", "HNSWIndex", "caf\xc3\xa9", "chunk", "chunks",
        "embedding", "of", "search", "readFileSync", "42", "2026", "query", "queries",
        "don\xe2\x80\x99t", "reranking", "\xe6\x97\xa5\xe6\x9c\xac", "configure", "it's",
        "supercalifragilisticexpialidociousandthensomemorelettersuntilpastsixtyfourbytes",
    };
    size_t len = 0, nv = sizeof vocab / sizeof vocab[0];
    uint32_t x = seed;
    while (len + 100 < n) {
        x = x * 1664525u + 1013904223u;
        const char *w = vocab[(x >> 8) % nv];
        size_t wl = strlen(w);
        memcpy(buf + len, w, wl);
        len += wl;
        buf[len++] = (x >> 20) % 11 == 0 ? '\n' : ((x >> 24) % 7 == 0 ? ',' : ' ');
        if ((x >> 4) % 13 == 0) buf[len++] = ' ';
    }
    return len;
}

/* FNV-1a of the exact bytes of every vector, in order, under one parameter set. */
static uint64_t golden_run(const embed_local_params *p, char *big, size_t big_len)
{
    float *v = malloc((size_t)p->dims * sizeof *v);
    assert_non_null(v);
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t nt = sizeof golden_texts / sizeof golden_texts[0];
    for (size_t i = 0; i < nt + 3; i++) {
        const char *t = i < nt ? golden_texts[i] : big;
        size_t len = i < nt ? strlen(t) : (i == nt ? 1500 : (i == nt + 1 ? 20000 : big_len));
        embed_local_vector_params(t, len, p, v);
        const unsigned char *b = (const unsigned char *)v;
        for (size_t j = 0; j < (size_t)p->dims * sizeof *v; j++)
            h = (h ^ b[j]) * 0x100000001b3ULL;
    }
    free(v);
    return h;
}

static void test_vectors_bit_identical(void **state)
{
    (void)state;
    /* Expected values produced by the embedder before the per-thread word cache (commit
     * 2a5a500): any change in a bit of any vector fails here. */
    static const uint64_t expected[] = {
        0x5c260c0fb05befc7ULL, 0x87ef92b1ee0b555fULL, 0xbd5374d22788822eULL,
        0xa9a1ec268568a55fULL, 0x4401e135112c3f95ULL, 0xac57c743c1d4862aULL,
        0x7bc88fe635dc554dULL, 0x57eb753adafdf9b6ULL, 0x73f60b0d5ddc40ceULL,
    };
    size_t big_cap = 600000;
    char *big = malloc(big_cap);
    assert_non_null(big);
    size_t big_len = golden_generate(big, big_cap, 7);
    embed_local_params sets[10];
    int ns = 0;
    embed_local_params_default(&sets[ns++], 1024);
    embed_local_params_default(&sets[ns++], 384);
    embed_local_params_default(&sets[ns++], 64);
    embed_local_params_default(&sets[ns], 256);
    sets[ns].bigram_weight = 0.3f;
    sets[ns++].char_sublinear = 1;
    embed_local_params_default(&sets[ns], 512);
    sets[ns].stem = 0;
    sets[ns].stopwords = 0;
    sets[ns++].split_camel = 0;
    embed_local_params_default(&sets[ns], 300);
    sets[ns].length_weight = 0.5f;
    sets[ns].salt = 12345;
    sets[ns].char_min = 2;
    sets[ns++].char_max = 7;
    embed_local_params_default(&sets[ns], 128);
    sets[ns++].char_weight = 0;
    embed_local_params_default(&sets[ns], 128);
    sets[ns++].unigram_weight = 0;
    embed_local_params_default(&sets[ns], 4096);
    sets[ns++].char_min = 4;
    /* Each set three times, the sets interleaved: without the word cache, then twice with it
     * (the third round runs with whatever the cache kept from the other sets). */
    int bad = 0;
    for (int round = 0; round < 3; round++) {
        embed_local_word_cache(round > 0);
        for (int s = 0; s < ns; s++) {
            assert_true(embed_local_params_valid(&sets[s]));
            uint64_t got = golden_run(&sets[s], big, big_len);
            if (s >= (int)(sizeof expected / sizeof expected[0]) || got != expected[s]) {
                fprintf(stderr, "set %d round %d: 0x%016llxULL\n", s, round,
                        (unsigned long long)got);
                bad = 1;
            }
        }
    }
    embed_local_word_cache(0);
    free(big);
    assert_false(bad);
}

static void test_params(void **state)
{
    (void)state;
    embed_local_params p;
    embed_local_params_default(&p, DIMS);
    assert_true(embed_local_params_valid(&p));
    p.dims = 63;
    assert_false(embed_local_params_valid(&p));
    p.dims = DIMS;
    p.char_max = RAGD_EMBED_CHAR_NGRAM_MAX + 1;
    assert_false(embed_local_params_valid(&p));
    p.char_max = 5;
    p.bigram_weight = -1.0f;
    assert_false(embed_local_params_valid(&p));
    p.bigram_weight = 0.0f;
    p.char_weight = 0.0f;
    assert_true(embed_local_params_valid(&p));
    /* Unigrams only: a one-word text has exactly one non-zero dimension of magnitude 1. */
    float v[DIMS];
    embed_local_vector_params("refunds", 7, &p, v);
    int nonzero = 0;
    for (int i = 0; i < DIMS; i++)
        if (v[i] != 0.0f) {
            nonzero++;
            assert_true(fabsf(fabsf(v[i]) - 1.0f) < 1e-6f);
        }
    assert_int_equal(nonzero, 1);
    /* Unigrams are stems: "refund" lands on the same dimension with the same sign. */
    float w[DIMS];
    embed_local_vector_params("refund", 6, &p, w);
    assert_memory_equal(v, w, sizeof v);

    ragd_err err = {0};
    embed_provider *prov = NULL;
    p.dims = 5000;
    assert_int_equal(embed_local_new_params(&p, &prov, &err), RAGD_ERR_INVALID);
    assert_null(prov);
    ragd_err_clear(&err);
    assert_int_equal(embed_local_new(32, &prov, &err), RAGD_ERR_INVALID);
    assert_null(prov);
    assert_true(strstr(err.msg, "dims") != NULL);
}

/* ---- provider layer ------------------------------------------------------------------------ */

static void cfg_init(ragd_cfg *cfg, char *provider, char *key, int dims, int batch)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->embed_provider = provider;
    cfg->embed_api_key = key;
    cfg->embed_dims = dims;
    cfg->embed_batch_size = batch;
    cfg->embed_base_url = "http://127.0.0.1:9/v1/";
    cfg->embed_model = "text-embedding-3-small";
    cfg->embed_send_dimensions = "auto";
    cfg->embed_headers = "";
    cfg->embed_concurrency = 2;
    cfg->embed_max_retries = 1;
    cfg->embed_retry_max_time_s = 1;
    cfg->embed_connect_timeout_s = 1;
    cfg->embed_timeout_s = 1;
    cfg->embed_price_per_million = 0.02;
}

static void test_provider_new(void **state)
{
    (void)state;
    ragd_cfg cfg;
    ragd_err err = {0};
    embed_provider *p = NULL;

    cfg_init(&cfg, "auto", "", 384, 16);
    assert_int_equal(embed_provider_new(&cfg, &p, &err), RAGD_OK);
    assert_non_null(p);
    assert_string_equal(p->ops->name, "local");
    assert_string_equal(p->model, "ragd-local-v1");
    assert_int_equal(p->dims, 384);
    assert_int_equal(p->max_batch, 16);
    embed_provider_free(p);

    /* auto with a key picks the OpenAI-compatible provider, with the configured model. */
    p = NULL;
    cfg_init(&cfg, "auto", "sk-test", 256, 64);
    assert_int_equal(embed_provider_new(&cfg, &p, &err), RAGD_OK);
    assert_string_equal(p->ops->name, "openai");
    assert_string_equal(p->model, "text-embedding-3-small");
    assert_int_equal(p->dims, 256);
    assert_int_equal(p->max_batch, 64);
    assert_true(p->price_per_million > 0.0);
    embed_provider_free(p);

    p = NULL;
    cfg_init(&cfg, "local", NULL, 512, 64);
    assert_int_equal(embed_provider_new(&cfg, &p, &err), RAGD_OK);
    assert_string_equal(p->ops->name, "local");
    /* The provider's vectors are embed_local_vector's. */
    float a[512], b[512];
    const char *t = policy_text;
    size_t len = strlen(t);
    assert_int_equal(embed_batch_run(p, &t, &len, 1, a, &err), RAGD_OK);
    embed_local_vector(t, len, 512, b);
    assert_memory_equal(a, b, sizeof a);
    embed_provider_free(p);

    p = NULL;
    cfg_init(&cfg, "remote", NULL, 512, 64);
    assert_int_equal(embed_provider_new(&cfg, &p, &err), RAGD_ERR_CONFIG);
    assert_null(p);
    assert_true(strstr(err.msg, "remote") != NULL);

    /* openai: a base_url that is not http(s), and headers without "Name: value", stop start-up. */
    ragd_err_clear(&err);
    cfg_init(&cfg, "openai", "sk-x", 512, 64);
    cfg.embed_base_url = "ftp://example.com";
    assert_int_equal(embed_provider_new(&cfg, &p, &err), RAGD_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "base_url"));
    ragd_err_clear(&err);
    cfg_init(&cfg, "openai", "sk-x", 512, 64);
    cfg.embed_headers = "X-Org: acme; broken";
    assert_int_equal(embed_provider_new(&cfg, &p, &err), RAGD_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "headers"));
    ragd_err_clear(&err);
    cfg_init(&cfg, "openai", "", 512, 64);
    cfg.embed_headers = "X-Org: acme; X-Team:  search ";
    assert_int_equal(embed_provider_new(&cfg, &p, &err), RAGD_OK);
    assert_string_equal(p->ops->name, "openai");
    embed_provider_free(p);
    p = NULL;

    ragd_err_clear(&err);
    cfg_init(&cfg, "local", NULL, 10, 64);
    assert_int_equal(embed_provider_new(&cfg, &p, &err), RAGD_ERR_INVALID);
    assert_null(p);

    embed_provider_free(NULL);
}

/* A wrapper provider that records the batch sizes it is called with. */
static size_t batch_calls;
static size_t batch_largest;
static embed_provider *wrapped;

static ragd_rc counting_batch(embed_provider *p, const char *const *texts, const size_t *lens,
                              size_t n, float *out, ragd_err *err)
{
    (void)p;
    batch_calls++;
    if (n > batch_largest) batch_largest = n;
    return wrapped->ops->batch(wrapped, texts, lens, n, out, err);
}

static void test_batch_splits(void **state)
{
    (void)state;
    ragd_err err = {0};
    assert_int_equal(embed_local_new(128, &wrapped, &err), RAGD_OK);
    embed_ops ops = {.name = "counting", .batch = counting_batch, .destroy = NULL};
    embed_provider counting = {.ops = &ops, .dims = 128, .max_batch = 3};

    const char *texts[10] = {
        "refund policy", "", "shipping times to Europe", "the and of", "kitchen recipes",
        "warranty claims", "ragd configuration", "vector store", "chunk overlap", "tokens",
    };
    size_t lens[10];
    for (int i = 0; i < 10; i++) lens[i] = strlen(texts[i]);
    float got[10 * 128];
    for (size_t i = 0; i < 10 * 128; i++) got[i] = 9.0f;
    batch_calls = 0;
    batch_largest = 0;
    assert_int_equal(embed_batch_run(&counting, texts, lens, 10, got, &err), RAGD_OK);
    assert_int_equal(batch_calls, 4);
    assert_int_equal(batch_largest, 3);
    for (int i = 0; i < 10; i++) {
        float one[128];
        embed_local_vector(texts[i], lens[i], 128, one);
        assert_memory_equal(got + i * 128, one, sizeof one);
    }
    /* lens NULL means NUL-terminated texts. */
    float again[10 * 128];
    assert_int_equal(embed_batch_run(&counting, texts, NULL, 10, again, &err), RAGD_OK);
    assert_memory_equal(got, again, sizeof got);
    /* n = 0 does nothing; a NULL provider is an error. */
    batch_calls = 0;
    assert_int_equal(embed_batch_run(&counting, texts, lens, 0, got, &err), RAGD_OK);
    assert_int_equal(batch_calls, 0);
    assert_int_equal(embed_batch_run(NULL, texts, lens, 1, got, &err), RAGD_ERR_INVALID);
    embed_provider_free(wrapped);
    wrapped = NULL;
}


/* ---- openai provider pieces ------------------------------------------------------------------ */

static void test_openai_batch_pack(void **state)
{
    (void)state;
    size_t t[6] = {100, 100, 100, 100, 100, 100};
    assert_int_equal(embed_batch_pack(t, 0, 4, 1000), 0);
    assert_int_equal(embed_batch_pack(t, 6, 4, 1000), 4);  /* the input cap */
    assert_int_equal(embed_batch_pack(t, 6, 2048, 250), 2); /* the token cap */
    assert_int_equal(embed_batch_pack(t, 6, 2048, 300), 3); /* exactly at the cap fits */
    assert_int_equal(embed_batch_pack(t, 3, 2048, 1000), 3);
    /* One input over the token cap still goes alone (it was checked against the per-input
     * limit before packing), and never with another. */
    size_t big[2] = {5000, 10};
    assert_int_equal(embed_batch_pack(big, 2, 2048, 300), 1);
    assert_int_equal(embed_batch_pack(big + 1, 1, 2048, 300), 1);
    assert_int_equal(embed_batch_pack(t, 6, 0, 1000), 1);
    /* Under the real limits: 2048 inputs per request at most. */
    size_t *many = calloc(5000, sizeof *many);
    assert_non_null(many);
    for (int i = 0; i < 5000; i++) many[i] = 100;
    assert_int_equal(embed_batch_pack(many, 5000, RAGD_OPENAI_MAX_INPUTS,
                                      RAGD_OPENAI_MAX_REQUEST_TOKENS), 2048);
    for (int i = 0; i < 5000; i++) many[i] = 4000;
    assert_int_equal(embed_batch_pack(many, 5000, RAGD_OPENAI_MAX_INPUTS,
                                      RAGD_OPENAI_MAX_REQUEST_TOKENS), 75);
    free(many);
}

static void test_openai_tokens_bound(void **state)
{
    (void)state;
    const char *t = "The quick brown fox jumps over the lazy dog.";
    size_t len = strlen(t);
    size_t est = ingest_tokens_count(t, len);
    size_t b = embed_tokens_bound(t, len);
    assert_true(b >= est);       /* never below the estimate */
    assert_true(b <= len);       /* a token is at least one byte */
    assert_int_equal(embed_tokens_bound("", 0), 0);
    assert_true(embed_tokens_bound("x", 1) == 1);
}

static void test_openai_status_verdict(void **state)
{
    (void)state;
    assert_int_equal(embed_status_verdict(429, "rate_limit_exceeded", "requests"),
                     RAGD_EMBED_RETRY);
    assert_int_equal(embed_status_verdict(429, NULL, NULL), RAGD_EMBED_RETRY);
    assert_int_equal(embed_status_verdict(429, "insufficient_quota", NULL), RAGD_EMBED_REFUSED);
    assert_int_equal(embed_status_verdict(429, NULL, "insufficient_quota"), RAGD_EMBED_REFUSED);
    assert_int_equal(embed_status_verdict(408, NULL, NULL), RAGD_EMBED_RETRY);
    assert_int_equal(embed_status_verdict(409, NULL, NULL), RAGD_EMBED_RETRY);
    assert_int_equal(embed_status_verdict(500, NULL, NULL), RAGD_EMBED_RETRY);
    assert_int_equal(embed_status_verdict(503, NULL, NULL), RAGD_EMBED_RETRY);
    assert_int_equal(embed_status_verdict(400, NULL, NULL), RAGD_EMBED_REFUSED);
    assert_int_equal(embed_status_verdict(401, "invalid_api_key", NULL), RAGD_EMBED_REFUSED);
    assert_int_equal(embed_status_verdict(403, NULL, NULL), RAGD_EMBED_REFUSED);
    assert_int_equal(embed_status_verdict(404, NULL, NULL), RAGD_EMBED_REFUSED);
    assert_int_equal(embed_status_verdict(422, NULL, NULL), RAGD_EMBED_REFUSED);
}

static void test_openai_retry_after(void **state)
{
    (void)state;
    assert_true(embed_retry_after_ms(NULL, NULL, 0) < 0);
    assert_true(embed_retry_after_ms("", "", 0) < 0);
    assert_true(fabs(embed_retry_after_ms("250", NULL, 0) - 250.0) < 1e-9);
    assert_true(fabs(embed_retry_after_ms("12.5", "7", 0) - 12.5) < 1e-9); /* ms header wins */
    assert_true(fabs(embed_retry_after_ms(NULL, "7", 0) - 7000.0) < 1e-9);
    assert_true(fabs(embed_retry_after_ms("junk", "2", 0) - 2000.0) < 1e-9);
    assert_true(embed_retry_after_ms("-5", NULL, 0) < 0);
    assert_true(embed_retry_after_ms(NULL, "soon", 0) < 0);
    /* An HTTP date: Wed, 21 Oct 2015 07:28:00 GMT is 1445412480. */
    double ms = embed_retry_after_ms(NULL, "Wed, 21 Oct 2015 07:28:00 GMT", 1445412470);
    assert_true(fabs(ms - 10000.0) < 1e-9);
    assert_true(embed_retry_after_ms(NULL, "Wed, 21 Oct 2015 07:28:00 GMT", 1445412490) == 0.0);
}

static void test_openai_backoff(void **state)
{
    (void)state;
    /* [d/2, d] with d doubling from base up to cap. */
    assert_true(fabs(embed_backoff_ms(1, 500, 8000, 0.0) - 250.0) < 1e-9);
    assert_true(fabs(embed_backoff_ms(1, 500, 8000, 0.999999) - 500.0) < 1e-3);
    assert_true(fabs(embed_backoff_ms(2, 500, 8000, 0.0) - 500.0) < 1e-9);
    assert_true(fabs(embed_backoff_ms(3, 500, 8000, 0.5) - 1500.0) < 1e-9);
    assert_true(fabs(embed_backoff_ms(30, 500, 8000, 0.0) - 4000.0) < 1e-9);
    assert_true(embed_backoff_ms(30, 500, 8000, 0.999) <= 8000.0);
    assert_true(fabs(embed_backoff_ms(0, 500, 8000, 0.0) - 250.0) < 1e-9);
}

/* A done callback that checks the rows it gets and counts them. */
static size_t done_rows;
static ragd_rc count_done(void *ctx, size_t first, size_t count, const float *vectors,
                          int64_t tokens, ragd_err *err)
{
    (void)err;
    const float *out = ctx;
    assert_ptr_equal(vectors, out + first * 128);
    assert_int_equal(tokens, 0);
    done_rows += count;
    return RAGD_OK;
}

static ragd_rc stop_done(void *ctx, size_t first, size_t count, const float *vectors,
                         int64_t tokens, ragd_err *err)
{
    (void)ctx, (void)first, (void)count, (void)vectors, (void)tokens;
    return ragd_err_set(err, RAGD_ERR_STORE, "disk full");
}

static void test_batch_run_each_callbacks(void **state)
{
    (void)state;
    embed_provider *p = NULL;
    ragd_err err = {0};
    assert_int_equal(embed_local_new(128, &p, &err), RAGD_OK);
    p->max_batch = 3;
    const char *texts[7] = {"a one", "b two", "c three", "d four", "e five", "f six", "g seven"};
    float out[7 * 128];
    done_rows = 0;
    assert_int_equal(embed_batch_run_each(p, texts, NULL, 7, out, count_done, out, &err),
                     RAGD_OK);
    assert_int_equal(done_rows, 7);
    embed_counters k;
    embed_counters_get(p, &k);
    assert_int_equal(k.inputs, 7);
    assert_int_equal(k.requests, 0);
    assert_true(k.cost_usd == 0.0);
    /* A callback error stops the run with that error. */
    assert_int_equal(embed_batch_run_each(p, texts, NULL, 7, out, stop_done, NULL, &err),
                     RAGD_ERR_STORE);
    assert_non_null(strstr(err.msg, "disk full"));
    embed_provider_free(p);
    embed_counters_get(NULL, &k);
    assert_int_equal(k.inputs, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_fingerprint_stable),
        cmocka_unit_test(test_unit_norm),
        cmocka_unit_test(test_empty_and_stopwords_zero),
        cmocka_unit_test(test_dims_respected),
        cmocka_unit_test(test_related_beats_unrelated),
        cmocka_unit_test(test_stemming),
        cmocka_unit_test(test_tokenizer_terms),
        cmocka_unit_test(test_camel_case_parts),
        cmocka_unit_test(test_variants),
        cmocka_unit_test(test_long_and_huge_texts),
        cmocka_unit_test(test_vectors_bit_identical),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_provider_new),
        cmocka_unit_test(test_batch_splits),
        cmocka_unit_test(test_openai_batch_pack),
        cmocka_unit_test(test_openai_tokens_bound),
        cmocka_unit_test(test_openai_status_verdict),
        cmocka_unit_test(test_openai_retry_after),
        cmocka_unit_test(test_openai_backoff),
        cmocka_unit_test(test_batch_run_each_callbacks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
