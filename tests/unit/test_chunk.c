/* SPDX-License-Identifier: MIT */
/*
 * test_chunk.c - the chunker and token estimate: table cases from tests/data/chunk/<case>/
 * (input, optional opts, expected; format in tests/data/chunk/README.md), property checks on
 * every case and on generated documents, and option validation. Run from the repo root, or set
 * RAGD_TEST_DATA to the tests/data folder.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ragd/ingest.h"
#include "ragd/util.h"

static const char *data_dir(void)
{
    const char *env = getenv("RAGD_TEST_DATA");
    return env && env[0] ? env : "tests/data";
}

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Returns: 1 if the line holding byte i is a markdown heading line (ATX or setext parts). */
static int on_heading_line(const char *d, size_t len, size_t i)
{
    size_t a = i;
    while (a > 0 && d[a - 1] != '\n') a--;
    size_t p = a;
    while (p < len && p - a < 3 && d[p] == ' ') p++;
    if (d[p] == '#' || d[p] == '=' || d[p] == '-') return 1;
    /* setext text line: the next line is an underline */
    size_t e = i;
    while (e < len && d[e] != '\n') e++;
    return e + 1 < len && (d[e + 1] == '=' || d[e + 1] == '-');
}

/* The invariants every chunk list must satisfy:
 * - 0 <= start < end <= len, both on UTF-8 character boundaries, the slice valid UTF-8, and
 *   trimmed (first and last byte are not whitespace);
 * - tokens == ingest_tokens_count(slice) and tokens <= max_tokens;
 * - starts never decrease and ends strictly increase;
 * - every non-whitespace byte of the document is inside some chunk, except (markdown only) bytes
 *   on heading lines, because a heading whose section body is empty yields no chunk. */
static void check_invariants(const char *d, size_t len, const ingest_chunk_opts *o,
                             const ingest_chunk_list *l)
{
    char *covered = calloc(len + 1, 1);
    assert_non_null(covered);
    for (size_t i = 0; i < l->count; i++) {
        const ingest_chunk *c = &l->items[i];
        assert_true(c->start < c->end);
        assert_true(c->end <= len);
        assert_true(((unsigned char)d[c->start] & 0xC0) != 0x80);
        assert_true(c->end == len || ((unsigned char)d[c->end] & 0xC0) != 0x80);
        assert_true(util_utf8_valid(d + c->start, c->end - c->start));
        assert_false(is_ws((unsigned char)d[c->start]));
        assert_false(is_ws((unsigned char)d[c->end - 1]));
        assert_int_equal(c->tokens, ingest_tokens_count(d + c->start, c->end - c->start));
        assert_true(c->tokens <= (size_t)o->max_tokens);
        assert_non_null(c->heading);
        if (i > 0) {
            assert_true(c->start >= l->items[i - 1].start);
            assert_true(c->end > l->items[i - 1].end);
        }
        memset(covered + c->start, 1, c->end - c->start);
    }
    for (size_t i = 0; i < len; i++) {
        if (covered[i] || is_ws((unsigned char)d[i])) continue;
        if (o->markdown && on_heading_line(d, len, i)) continue;
        fail_msg("byte %zu ('%c') is in no chunk", i, d[i]);
    }
    free(covered);
}

static void read_opts(const char *dir, ingest_chunk_opts *o)
{
    o->target_tokens = 650;
    o->max_tokens = 800;
    o->overlap = 0.15;
    o->markdown = 1;
    char *path = util_path_join(dir, "opts");
    FILE *f = fopen(path, "r");
    free(path);
    if (f == NULL) return;
    char key[32];
    double v;
    while (fscanf(f, " %31[a-z]=%lf", key, &v) == 2) {
        if (strcmp(key, "target") == 0) o->target_tokens = (int)v;
        else if (strcmp(key, "max") == 0) o->max_tokens = (int)v;
        else if (strcmp(key, "overlap") == 0) o->overlap = v;
        else if (strcmp(key, "markdown") == 0) o->markdown = (int)v;
        else fail_msg("%s: unknown opts key %s", dir, key);
    }
    fclose(f);
}

static char *read_file(const char *dir, const char *name, size_t *len)
{
    char *path = util_path_join(dir, name);
    char *data = NULL;
    ragd_err err = {0};
    if (util_file_read(path, 1 << 24, &data, len, &err) != RAGD_OK) data = NULL;
    free(path);
    return data;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_table_cases(void **state)
{
    (void)state;
    char *root = util_path_join(data_dir(), "chunk");
    DIR *dir = opendir(root);
    if (dir == NULL)
        fail_msg("cannot open %s (run from the repo root or set RAGD_TEST_DATA)", root);
    char *names[256];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL && n < 256) {
        if (de->d_name[0] == '.' || strcmp(de->d_name, "README.md") == 0) continue;
        names[n++] = strdup(de->d_name);
    }
    closedir(dir);
    qsort(names, n, sizeof names[0], name_cmp);
    assert_true(n >= 12);
    for (size_t k = 0; k < n; k++) {
        char *cdir = util_path_join(root, names[k]);
        size_t len = 0, elen = 0;
        char *input = read_file(cdir, "input", &len);
        char *expected = read_file(cdir, "expected", &elen);
        if (input == NULL || expected == NULL) fail_msg("case %s: missing input/expected", cdir);
        ingest_chunk_opts o;
        read_opts(cdir, &o);
        ingest_chunk_list l = {0};
        ragd_err err = {0};
        assert_int_equal(ingest_chunk_split(input, len, &o, &l, &err), RAGD_OK);
        util_buf got = {0};
        for (size_t i = 0; i < l.count; i++)
            assert_int_equal(util_buf_printf(&got, "%zu %zu %zu %s\n", l.items[i].start,
                                             l.items[i].end, l.items[i].tokens,
                                             l.items[i].heading),
                             0);
        if (strcmp(got.data ? got.data : "", expected) != 0)
            fail_msg("case %s:\n--- expected\n%s--- got\n%s", names[k], expected,
                     got.data ? got.data : "");
        check_invariants(input, len, &o, &l);
        /* deterministic: a second run gives the same list */
        ingest_chunk_list again = {0};
        assert_int_equal(ingest_chunk_split(input, len, &o, &again, NULL), RAGD_OK);
        assert_int_equal(again.count, l.count);
        for (size_t i = 0; i < l.count; i++) {
            assert_int_equal(again.items[i].start, l.items[i].start);
            assert_int_equal(again.items[i].end, l.items[i].end);
        }
        ingest_chunk_list_free(&again);
        ingest_chunk_list_free(&l);
        util_buf_free(&got);
        free(input);
        free(expected);
        free(cdir);
        free(names[k]);
    }
    free(root);
}

/* Chunks doc with each of the n option sets and checks the invariants of every table. */
static void check_variants(const char *doc, size_t len, const ingest_chunk_opts *variants,
                           size_t n)
{
    for (size_t v = 0; v < n; v++) {
        ingest_chunk_list l = {0};
        assert_int_equal(ingest_chunk_split(doc, len, &variants[v], &l, NULL), RAGD_OK);
        assert_true(l.count > 0);
        check_invariants(doc, len, &variants[v], &l);
        ingest_chunk_list_free(&l);
    }
}

/* A document of random words, sentences, paragraphs, headings, fences and multibyte text. */
static char *make_doc(unsigned seed, size_t approx, size_t *len)
{
    static const char *const words[] = {"refund", "policy", "the", "customer", "may", "a",
                                         "within", "days", "e.g.", "Dr.", "3.5", "résumé",
                                         "退款", "🎉", "implementation", "x", "data-driven"};
    util_buf b = {0};
    unsigned r = seed;
    while (b.len < approx) {
        r = r * 1103515245u + 12345u;
        unsigned pick = (r >> 16) % 100;
        if (pick < 3)
            util_buf_printf(&b, "\n\n%.*s Heading %u\n\n", (int)(1 + (r >> 8) % 4), "####", r % 97);
        else if (pick < 5)
            util_buf_puts(&b, "\n\n```\n# code line\nmore code\n```\n\n");
        else if (pick < 12)
            util_buf_puts(&b, ". The ");
        else if (pick < 15)
            util_buf_puts(&b, ".\n\nA ");
        else if (pick < 17)
            util_buf_puts(&b, "\r\n");
        else
            util_buf_printf(&b, "%s ", words[(r >> 4) % (sizeof words / sizeof words[0])]);
    }
    *len = b.len;
    return util_buf_steal(&b);
}

static void test_generated_properties(void **state)
{
    (void)state;
    const ingest_chunk_opts variants[] = {
        {650, 800, 0.15, 1}, {16, 20, 0.5, 1}, {40, 60, 0.25, 0}, {100, 100, 0.0, 1}};
    for (unsigned seed = 1; seed <= 6; seed++) {
        size_t len;
        char *doc = make_doc(seed, 20000 + seed * 3000, &len);
        assert_non_null(doc);
        check_variants(doc, len, variants, sizeof variants / sizeof variants[0]);
        free(doc);
    }
}

/* A chunk's count is summed from its units' scans and the white space between them (see
 * chunk_tokens in src/ingest_chunk.c): it must equal the count of the chunk's text for every
 * kind of gap: punctuation before line breaks (the break rides on it), list markers and quotes
 * between units, tabs, CRLF, digits after spaces, and words too long for one chunk (adjacent
 * pieces, no gap). check_invariants compares each chunk with ingest_tokens_count. */
static void test_chunk_counts_from_units(void **state)
{
    (void)state;
    static const char *const bits[] = {
        "end.\n\n", "  - item one;\n", "\t> quoted, text:\r\n", "word)\n\n   ", "42 ",
        " 3.14\n", "x!\n\t\n", "résumé's ", "1. step\n", "it'll ", "## Head\n\n", "退款。\n",
        "(a) [b] {c}\n\n", "🎉 ", "--\n", "   \n", "Dr. Who. ", "supercalifragilistic ",
    };
    const ingest_chunk_opts variants[] = {
        {16, 20, 0.5, 1}, {16, 20, 0.0, 0}, {40, 60, 0.25, 1}, {100, 100, 0.0, 0}};
    for (unsigned seed = 1; seed <= 8; seed++) {
        util_buf b = {0};
        unsigned r = seed * 7919u;
        while (b.len < 12000) {
            r = r * 1103515245u + 12345u;
            if ((r >> 16) % 97 == 0) { /* a word longer than max_tokens */
                for (int k = 0; k < 60; k++) util_buf_puts(&b, k % 7 ? "abcdefgh" : "é.");
                util_buf_puts(&b, (r >> 8) % 2 ? "\n" : " ");
            } else {
                util_buf_puts(&b, bits[(r >> 4) % (sizeof bits / sizeof bits[0])]);
            }
        }
        size_t len = b.len;
        char *doc = util_buf_steal(&b);
        assert_non_null(doc);
        check_variants(doc, len, variants, sizeof variants / sizeof variants[0]);
        free(doc);
    }
}

static void test_overlap_between_chunks(void **state)
{
    (void)state;
    size_t len;
    char *doc = make_doc(42, 30000, &len);
    /* one section only: plain text, so every consecutive pair is in the same section; the
     * sentences are short, so the last one always fits in half of max_tokens */
    ingest_chunk_opts o = {100, 150, 0.2, 0};
    ingest_chunk_list l = {0};
    assert_int_equal(ingest_chunk_split(doc, len, &o, &l, NULL), RAGD_OK);
    assert_true(l.count > 10);
    for (size_t i = 1; i < l.count; i++) assert_true(l.items[i].start < l.items[i - 1].end);
    ingest_chunk_list_free(&l);
    /* overlap 0: chunks are disjoint */
    o.overlap = 0;
    assert_int_equal(ingest_chunk_split(doc, len, &o, &l, NULL), RAGD_OK);
    for (size_t i = 1; i < l.count; i++) assert_true(l.items[i].start >= l.items[i - 1].end);
    ingest_chunk_list_free(&l);
    free(doc);
}

static void test_invalid_opts(void **state)
{
    (void)state;
    const ingest_chunk_opts bad[] = {
        {15, 800, 0.1, 1}, {650, 649, 0.1, 1}, {650, 800, -0.1, 1}, {650, 800, 0.51, 1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ingest_chunk_list l = {(ingest_chunk *)&l, 77};
        ragd_err err = {0};
        assert_int_equal(ingest_chunk_split("text", 4, &bad[i], &l, &err), RAGD_ERR_INVALID);
        assert_int_equal(err.rc, RAGD_ERR_INVALID);
        assert_int_equal(l.count, 77); /* output untouched */
    }
    ingest_chunk_list_free(NULL);
}

static void test_tokens_count(void **state)
{
    (void)state;
    assert_int_equal(ingest_tokens_count("", 0), 0);
    assert_int_equal(ingest_tokens_count(" \n", 2), 1);
    assert_int_equal(ingest_tokens_count("hello", 5), 1);
    assert_int_equal(ingest_tokens_count("hello world", 11), 2);
    assert_int_equal(ingest_tokens_count("123456789", 9), 4); /* 3 groups at 1.2 */
    /* a long letter run costs more than a short word, CJK about one per character */
    assert_true(ingest_tokens_count("internationalization", 20) >= 2);
    const char *cjk = "退款政策客户"; /* 6 ideographs */
    assert_int_equal(ingest_tokens_count(cjk, strlen(cjk)), 6);
    /* cl100k gives 26 tokens for this sentence; the estimate must be within 20% */
    const char *s = "The quick brown fox jumps over the lazy dog, and then it runs away "
                    "to the forest where nobody can find it anymore.";
    size_t t = ingest_tokens_count(s, strlen(s));
    assert_true(t >= 21 && t <= 31);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_cases),
        cmocka_unit_test(test_generated_properties),
        cmocka_unit_test(test_chunk_counts_from_units),
        cmocka_unit_test(test_overlap_between_chunks),
        cmocka_unit_test(test_invalid_opts),
        cmocka_unit_test(test_tokens_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
