/* SPDX-License-Identifier: MIT */
/*
 * test_util.c - unit tests for the shared helpers: the growable buffer, SHA-256 against known
 * vectors, UTF-8 validation (valid forms, overlongs, surrogates, out of range, truncation, stray
 * continuation bytes), mkdir -p, whole-file reads with a size limit, atomic writes, path joins,
 * the error struct (first error wins, NULL err), ragd_rc names and log level parsing, and
 * util_double_g17 against snprintf("%.17g") on some 3.7 million doubles (random bit patterns,
 * scores, floats widened, integers, powers of 2 and 10 and their neighbours, constructed ties,
 * denormals, inf, nan). Filesystem tests work in their own mkdtemp directory and remove it.
 */
#include <errno.h>
#include <float.h>
#include <ftw.h>
#include <math.h>
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

#include "ragd/log.h"
#include "ragd/ragd.h"
#include "ragd/util.h"

#include "test_support.h"

/* ---- fixture: one temp dir per test ------------------------------------------------------- */

typedef struct fixture {
    char dir[256];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL) return -1;
    if (test_tmpdir_make(f->dir, sizeof f->dir, "util") != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    int rc = test_tree_remove(f->dir);
    free(f);
    return rc;
}

/* Returns: new path dir/name (free()). */
static char *path_in(const fixture *f, const char *name)
{
    char *p = util_path_join(f->dir, name);
    assert_non_null(p);
    return p;
}

static void file_put(const char *path, const char *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

/* ---- buffer ------------------------------------------------------------------------------- */

static void test_buf_append_printf_steal(void **state)
{
    (void)state;
    util_buf b = {0};
    assert_int_equal(util_buf_append(&b, "abc", 3), 0);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "abc");
    assert_int_equal(util_buf_append(&b, "xyz", 0), 0); /* zero bytes: unchanged */
    assert_int_equal(b.len, 3);
    assert_int_equal(util_buf_puts(&b, "-def"), 0);
    assert_int_equal(util_buf_printf(&b, "[%d:%s]", 42, "q"), 0);
    assert_string_equal(b.data, "abc-def[42:q]");
    assert_int_equal(b.len, strlen("abc-def[42:q]"));
    assert_true(b.cap > b.len);

    /* Grow well past the first allocation: content must survive every realloc. */
    for (int i = 0; i < 1000; i++) assert_int_equal(util_buf_printf(&b, "%04d", i), 0);
    assert_int_equal(b.len, 13 + 4000);
    assert_memory_equal(b.data + 13, "0000000100020003", 16);
    assert_memory_equal(b.data + b.len - 4, "0999", 4);
    assert_int_equal(b.data[b.len], '\0');

    /* Embedded NUL bytes are kept by append. */
    util_buf z = {0};
    assert_int_equal(util_buf_append(&z, "a\0b", 3), 0);
    assert_int_equal(z.len, 3);
    assert_memory_equal(z.data, "a\0b", 4);
    util_buf_free(&z);

    char *s = util_buf_steal(&b);
    assert_non_null(s);
    assert_int_equal(strlen(s), 13 + 4000);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    free(s);

    /* The buffer is reusable after steal. */
    assert_int_equal(util_buf_puts(&b, "again"), 0);
    assert_string_equal(b.data, "again");
    util_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    util_buf_free(&b); /* twice: still fine */
    util_buf_free(NULL);
}

static void test_buf_steal_empty(void **state)
{
    (void)state;
    util_buf b = {0};
    char *s = util_buf_steal(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);

    /* An empty printf still leaves a valid string. */
    assert_int_equal(util_buf_printf(&b, "%s", ""), 0);
    assert_int_equal(b.len, 0);
    s = util_buf_steal(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
}

/* ---- sha256 ------------------------------------------------------------------------------- */

static void test_sha256_vectors(void **state)
{
    (void)state;
    char out[UTIL_SHA256_HEX_LEN + 1];
    memset(out, '#', sizeof out);
    util_sha256_hex("", 0, out);
    assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    util_sha256_hex("abc", 3, out);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    util_sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, out);
    assert_string_equal(out, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    assert_int_equal(strlen(out), UTIL_SHA256_HEX_LEN);
    for (size_t i = 0; i < UTIL_SHA256_HEX_LEN; i++)
        assert_true((out[i] >= '0' && out[i] <= '9') || (out[i] >= 'a' && out[i] <= 'f'));
    /* Length matters, not only content: "abc" with its NUL differs. */
    char out2[UTIL_SHA256_HEX_LEN + 1];
    util_sha256_hex("abc", 4, out2);
    assert_string_not_equal(out2,
                            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* ---- utf-8 -------------------------------------------------------------------------------- */

#define UTF8_OK(lit) assert_int_equal(util_utf8_valid(lit, sizeof(lit) - 1), 1)
#define UTF8_BAD(lit) assert_int_equal(util_utf8_valid(lit, sizeof(lit) - 1), 0)

static void test_utf8_valid_forms(void **state)
{
    (void)state;
    assert_int_equal(util_utf8_valid("", 0), 1);
    UTF8_OK("plain ASCII text 0123 ~\x7f");
    UTF8_OK("\xc2\x80");                 /* U+0080, smallest 2-byte */
    UTF8_OK("caf\xc3\xa9");              /* é */
    UTF8_OK("\xdf\xbf");                 /* U+07FF */
    UTF8_OK("\xe0\xa0\x80");             /* U+0800, smallest 3-byte */
    UTF8_OK("\xe2\x82\xac");             /* € */
    UTF8_OK("\xed\x9f\xbf");             /* U+D7FF, just below the surrogates */
    UTF8_OK("\xee\x80\x80");             /* U+E000, just above */
    UTF8_OK("\xef\xbf\xbf");             /* U+FFFF */
    UTF8_OK("\xf0\x90\x80\x80");         /* U+10000, smallest 4-byte */
    UTF8_OK("\xf0\x9f\x98\x80");         /* 😀 */
    UTF8_OK("\xf4\x8f\xbf\xbf");         /* U+10FFFF, the largest */
    UTF8_OK("a\xc3\xa9" "b\xe2\x82\xac" "c\xf0\x9f\x98\x80" "d");
    /* A NUL byte is valid UTF-8 (U+0000); the length governs, not the terminator. */
    assert_int_equal(util_utf8_valid("a\0b", 3), 1);
    /* Only len bytes are looked at: a bad byte after len does not count. */
    assert_int_equal(util_utf8_valid("ab\xff", 2), 1);
}

static void test_utf8_invalid_forms(void **state)
{
    (void)state;
    /* overlongs */
    UTF8_BAD("\xc0\x80");
    UTF8_BAD("\xc1\xbf");
    UTF8_BAD("\xe0\x80\x80");
    UTF8_BAD("\xe0\x9f\xbf"); /* U+07FF as 3 bytes */
    UTF8_BAD("\xf0\x80\x80\x80");
    UTF8_BAD("\xf0\x8f\xbf\xbf"); /* U+FFFF as 4 bytes */
    /* surrogates */
    UTF8_BAD("\xed\xa0\x80"); /* U+D800 */
    UTF8_BAD("\xed\xbf\xbf"); /* U+DFFF */
    UTF8_BAD("\xed\xa0\xbd\xed\xb8\x80"); /* CESU-8 pair */
    /* above U+10FFFF and bytes that never occur */
    UTF8_BAD("\xf4\x90\x80\x80");
    UTF8_BAD("\xf5\x80\x80\x80");
    UTF8_BAD("\xf8\x88\x80\x80\x80");
    UTF8_BAD("\xfe");
    UTF8_BAD("\xff");
    /* truncated sequences at the end */
    UTF8_BAD("abc\xc3");
    UTF8_BAD("abc\xe2\x82");
    UTF8_BAD("abc\xe2");
    UTF8_BAD("abc\xf0\x9f\x98");
    UTF8_BAD("\xf0\x9f");
    UTF8_BAD("\xf0");
    assert_int_equal(util_utf8_valid("\xe2\x82\xac", 2), 0); /* len cuts a valid sequence */
    /* truncated in the middle: the next byte is not a continuation */
    UTF8_BAD("\xc3" "a");
    UTF8_BAD("\xe2\x82" "a");
    UTF8_BAD("\xf0\x9f\x98" "a");
    /* stray continuation bytes */
    UTF8_BAD("\x80");
    UTF8_BAD("a\xbf" "b");
    UTF8_BAD("\xc3\xa9\xa9"); /* one continuation too many */
    UTF8_BAD("\xe2\x82\xac\x80");
}

/* util_utf8_clip: never cuts inside a character, marks bad bytes, ends a cut copy with "...". */
static void test_utf8_clip(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(util_utf8_clip(out, sizeof out, "hello", 5), 5);
    assert_string_equal(out, "hello");
    /* fits exactly: 15 bytes */
    assert_int_equal(util_utf8_clip(out, sizeof out, "123456789012345", 15), 15);
    assert_string_equal(out, "123456789012345");
    /* one more: cut, with the marker */
    util_utf8_clip(out, sizeof out, "1234567890123456", 16);
    assert_string_equal(out, "123456789012...");
    /* a two-byte character that would straddle the cut is dropped whole */
    util_utf8_clip(out, sizeof out, "12345678901\xc3\xa9" "xyz", 16);
    assert_string_equal(out, "12345678901...");
    assert_true(util_utf8_valid(out, strlen(out)));
    /* bad bytes and NUL become '?' */
    util_utf8_clip(out, sizeof out, "a\xe7" "b\0" "c\xff", 6);
    assert_string_equal(out, "a?b?c?");
    /* a truncated sequence at the end */
    util_utf8_clip(out, sizeof out, "ab\xe2\x82", 4);
    assert_string_equal(out, "ab??");
    /* every cut of every prefix of a multibyte text is valid UTF-8 */
    static const char text[] = "\xc3\xa9" "t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80!";
    for (size_t size = 5; size <= sizeof out; size++)
        for (size_t len = 0; len < sizeof text; len++) {
            size_t n = util_utf8_clip(out, size, text, len);
            assert_true(n < size);
            assert_int_equal(strlen(out), n);
            assert_true(util_utf8_valid(out, n));
        }
    util_utf8_clip(out, sizeof out, NULL, 0);
    assert_string_equal(out, "");
}

static void test_utf8_first_invalid(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len, want;
    } cases[] = {
        {"", 0, 0},
        {"abc", 3, 3},
        {"caf\xc3\xa9", 5, 5},
        {"abc\xff", 4, 3},
        {"\xc3", 1, 0},
        {"a\xe2\x82", 3, 1},
        {"ab\xed\xa0\x80z", 6, 2},
        {"\xe2\x82\xac\x80", 4, 3},
        {"\xf0\x9f\x98\x80\xf4\x90\x80\x80", 8, 4},
        {"x\xc0\x80", 3, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t got = util_utf8_first_invalid(cases[i].s, cases[i].len);
        if (got != cases[i].want) fail_msg("case %zu: first invalid %zu, want %zu", i, got,
                                           cases[i].want);
        assert_int_equal(util_utf8_valid(cases[i].s, cases[i].len), got == cases[i].len);
    }
}

/* ---- filesystem --------------------------------------------------------------------------- */

static void test_mkdir_p(void **state)
{
    fixture *f = *state;
    char *nested = path_in(f, "a/b/c/d");
    ragd_err err = {0};
    assert_int_equal(util_mkdir_p(nested, &err), RAGD_OK);
    assert_int_equal(err.rc, RAGD_OK);
    struct stat st;
    assert_int_equal(stat(nested, &st), 0);
    assert_true(S_ISDIR(st.st_mode));

    /* Existing: fine, again. With a trailing slash too. */
    assert_int_equal(util_mkdir_p(nested, &err), RAGD_OK);
    char *slash = path_in(f, "a/b/c/d/");
    assert_int_equal(util_mkdir_p(slash, &err), RAGD_OK);
    assert_int_equal(util_mkdir_p(f->dir, NULL), RAGD_OK);

    /* Through a regular file: RAGD_ERR_IO, both below it and at it. */
    char *file = path_in(f, "a/plain");
    file_put(file, "x", 1);
    char *below = path_in(f, "a/plain/sub/dir");
    assert_int_equal(util_mkdir_p(below, &err), RAGD_ERR_IO);
    assert_int_equal(err.rc, RAGD_ERR_IO);
    assert_true(strlen(err.msg) > 0);
    ragd_err_clear(&err);
    assert_int_equal(util_mkdir_p(file, &err), RAGD_ERR_IO);
    assert_int_equal(err.rc, RAGD_ERR_IO);
    assert_int_equal(util_mkdir_p(below, NULL), RAGD_ERR_IO);

    /* Empty name is refused, not treated as the current directory. */
    ragd_err_clear(&err);
    assert_int_not_equal(util_mkdir_p("", &err), RAGD_OK);
    assert_int_not_equal(err.rc, RAGD_OK);
    free(nested);
    free(slash);
    free(file);
    free(below);
}

static void test_file_read_limits(void **state)
{
    fixture *f = *state;
    char *p = path_in(f, "data.bin");
    char content[100];
    for (size_t i = 0; i < sizeof content; i++) content[i] = (char)('a' + i % 26);
    content[50] = '\0'; /* binary-safe */
    file_put(p, content, sizeof content);

    ragd_err err = {0};
    char *out = NULL;
    size_t len = 12345;
    assert_int_equal(util_file_read(p, sizeof content, &out, &len, &err), RAGD_OK);
    assert_int_equal(err.rc, RAGD_OK);
    assert_non_null(out);
    assert_int_equal(len, sizeof content);
    assert_memory_equal(out, content, sizeof content);
    assert_int_equal(out[len], '\0');
    free(out);

    /* One byte over the limit: refused, outputs untouched. */
    out = (char *)0x1;
    len = 777;
    assert_int_equal(util_file_read(p, sizeof content - 1, &out, &len, &err),
                     RAGD_ERR_TOO_LARGE);
    assert_int_equal(err.rc, RAGD_ERR_TOO_LARGE);
    assert_ptr_equal(out, (char *)0x1);
    assert_int_equal(len, 777);

    /* Empty file with a zero limit is fine. */
    char *empty = path_in(f, "empty");
    file_put(empty, "", 0);
    out = NULL;
    assert_int_equal(util_file_read(empty, 0, &out, &len, NULL), RAGD_OK);
    assert_non_null(out);
    assert_int_equal(len, 0);
    assert_string_equal(out, "");
    free(out);

    /* Missing file: NOT_FOUND. */
    char *missing = path_in(f, "no-such-file");
    ragd_err_clear(&err);
    assert_int_equal(util_file_read(missing, 1000, &out, &len, &err), RAGD_ERR_NOT_FOUND);
    assert_int_equal(err.rc, RAGD_ERR_NOT_FOUND);

    /* A directory: IO. */
    ragd_err_clear(&err);
    assert_int_equal(util_file_read(f->dir, 1000, &out, &len, &err), RAGD_ERR_IO);
    assert_int_equal(err.rc, RAGD_ERR_IO);
    free(p);
    free(empty);
    free(missing);
}

static void test_file_write_atomic(void **state)
{
    fixture *f = *state;
    char *p = path_in(f, "out.txt");
    char *tmp = path_in(f, "out.txt.tmp");
    ragd_err err = {0};
    assert_int_equal(util_file_write_atomic(p, "first version\n", 14, &err), RAGD_OK);
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(util_file_read(p, 1024, &out, &len, NULL), RAGD_OK);
    assert_int_equal(len, 14);
    assert_memory_equal(out, "first version\n", 14);
    free(out);
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(errno, ENOENT);

    /* Overwrite with shorter content: no leftovers from the longer one. */
    assert_int_equal(util_file_write_atomic(p, "v2", 2, &err), RAGD_OK);
    assert_int_equal(util_file_read(p, 1024, &out, &len, NULL), RAGD_OK);
    assert_int_equal(len, 2);
    assert_string_equal(out, "v2");
    free(out);
    assert_int_equal(access(tmp, F_OK), -1);

    /* Zero bytes. */
    assert_int_equal(util_file_write_atomic(p, "", 0, &err), RAGD_OK);
    assert_int_equal(util_file_read(p, 1024, &out, &len, NULL), RAGD_OK);
    assert_int_equal(len, 0);
    free(out);
    assert_int_equal(err.rc, RAGD_OK);

    /* Into a missing directory: IO error, nothing created. */
    char *bad = path_in(f, "missing-dir/out.txt");
    assert_int_equal(util_file_write_atomic(bad, "x", 1, &err), RAGD_ERR_IO);
    assert_int_equal(err.rc, RAGD_ERR_IO);
    assert_int_equal(access(bad, F_OK), -1);
    free(bad);
    free(p);
    free(tmp);
}

static void test_path_join(void **state)
{
    (void)state;
    static const struct {
        const char *dir, *name, *want;
    } cases[] = {
        {"a", "b", "a/b"},         {"a/", "b", "a/b"},     {"a//", "b", "a/b"},
        {"a", "/b", "a/b"},        {"a/", "//b", "a/b"},   {"/", "b", "/b"},
        {"/", "/b", "/b"},         {"/x/y", "z/w", "/x/y/z/w"},
        {"a", "", "a/"},           {"/tmp/d", "index.faiss", "/tmp/d/index.faiss"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = util_path_join(cases[i].dir, cases[i].name);
        assert_non_null(p);
        if (strcmp(p, cases[i].want) != 0)
            fail_msg("util_path_join(\"%s\", \"%s\") = \"%s\", want \"%s\"", cases[i].dir,
                     cases[i].name, p, cases[i].want);
        free(p);
    }
    char *s = util_strndup("hello world", 5);
    assert_string_equal(s, "hello");
    free(s);
}

/* ---- errors, names, log levels ------------------------------------------------------------ */

static void test_err_first_wins(void **state)
{
    (void)state;
    ragd_err err = {0};
    assert_int_equal(ragd_err_set(&err, RAGD_ERR_IO, "first %d", 1), RAGD_ERR_IO);
    assert_int_equal(err.rc, RAGD_ERR_IO);
    assert_string_equal(err.msg, "first 1");
    /* A later error returns its own rc but does not overwrite. */
    assert_int_equal(ragd_err_set(&err, RAGD_ERR_STORE, "second"), RAGD_ERR_STORE);
    assert_int_equal(err.rc, RAGD_ERR_IO);
    assert_string_equal(err.msg, "first 1");

    ragd_err_clear(&err);
    assert_int_equal(err.rc, RAGD_OK);
    assert_string_equal(err.msg, "");
    assert_int_equal(ragd_err_set(&err, RAGD_ERR_INVALID, "%s", "third"), RAGD_ERR_INVALID);
    assert_string_equal(err.msg, "third");

    /* NULL err: returns rc, does not crash. */
    assert_int_equal(ragd_err_set(NULL, RAGD_ERR_NOMEM, "x %s", "y"), RAGD_ERR_NOMEM);
    ragd_err_clear(NULL);

    /* A long message is truncated, not overflowed. */
    ragd_err big = {0};
    char longs[2 * RAGD_ERR_MSG_MAX];
    memset(longs, 'z', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    ragd_err_set(&big, RAGD_ERR_INVALID, "%s", longs);
    assert_int_equal(strlen(big.msg), RAGD_ERR_MSG_MAX - 1);
}

static void test_rc_names(void **state)
{
    (void)state;
    assert_string_equal(ragd_rc_name(RAGD_OK), "ok");
    assert_string_equal(ragd_rc_name(RAGD_ERR_INVALID), "invalid");
    assert_string_equal(ragd_rc_name(RAGD_ERR_NOT_FOUND), "not_found");
    const char *seen[RAGD_ERR_CACHE + 1];
    for (int rc = RAGD_OK; rc <= RAGD_ERR_CACHE; rc++) {
        const char *n = ragd_rc_name((ragd_rc)rc);
        assert_non_null(n);
        if (strcmp(n, "unknown") == 0) fail_msg("ragd_rc %d has no name", rc);
        for (const char *c = n; *c; c++)
            assert_true((*c >= 'a' && *c <= 'z') || *c == '_');
        for (int j = 0; j < rc; j++)
            if (strcmp(seen[j], n) == 0) fail_msg("ragd_rc %d and %d share name %s", j, rc, n);
        seen[rc] = n;
    }
    assert_string_equal(ragd_rc_name((ragd_rc)(RAGD_ERR_CACHE + 1)), "unknown");
}

static void test_log_level_parse(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int rc;
        ragd_log_level want;
    } cases[] = {
        {"debug", 0, RAGD_LOG_DEBUG}, {"info", 0, RAGD_LOG_INFO},
        {"warn", 0, RAGD_LOG_WARN},   {"warning", 0, RAGD_LOG_WARN},
        {"error", 0, RAGD_LOG_ERROR}, {"DEBUG", 0, RAGD_LOG_DEBUG},
        {"Warn", 0, RAGD_LOG_WARN},   {"", -1, RAGD_LOG_INFO},
        {"verbose", -1, RAGD_LOG_INFO}, {"info ", -1, RAGD_LOG_INFO},
        {"err", -1, RAGD_LOG_INFO},   {"trace", -1, RAGD_LOG_INFO},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ragd_log_level out = (ragd_log_level)99;
        int rc = log_level_parse(cases[i].name, &out);
        if (rc != cases[i].rc) fail_msg("log_level_parse(\"%s\") = %d", cases[i].name, rc);
        if (rc == 0) assert_int_equal(out, cases[i].want);
        else assert_int_equal(out, 99); /* untouched on failure */
    }
    ragd_log_level out = RAGD_LOG_ERROR;
    assert_int_equal(log_level_parse(NULL, &out), -1);
    assert_int_equal(out, RAGD_LOG_ERROR);
    /* name round trip */
    for (int l = RAGD_LOG_DEBUG; l <= RAGD_LOG_ERROR; l++) {
        assert_int_equal(log_level_parse(log_level_name((ragd_log_level)l), &out), 0);
        assert_int_equal(out, l);
    }
}

/* util_url_redact hides the password of a URL's user info and of password= parameters, and
 * nothing else; util_sql_identifier_valid takes plain lower-case identifiers only. */
static void test_url_redact(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"postgresql://app:s3cret@db:5432/x", "postgresql://app:<redacted>@db:5432/x"},
        {"postgresql://app@db/x?sslmode=disable", "postgresql://app@db/x?sslmode=disable"},
        {"postgresql://db/x?user=a&password=pw&sslmode=require",
         "postgresql://db/x?user=a&password=<redacted>&sslmode=require"},
        {"host=db password=pw dbname=x", "host=db password=<redacted> dbname=x"},
        {"postgresql://u:p%40ss@h/d", "postgresql://u:<redacted>@h/d"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *r = util_url_redact(cases[i][0]);
        assert_non_null(r);
        assert_string_equal(r, cases[i][1]);
        free(r);
    }
    assert_null(util_url_redact(NULL));
    assert_true(util_sql_identifier_valid("ragd"));
    assert_true(util_sql_identifier_valid("_x9"));
    assert_false(util_sql_identifier_valid("Ragd"));
    assert_false(util_sql_identifier_valid("9x"));
    assert_false(util_sql_identifier_valid("a-b"));
    assert_false(util_sql_identifier_valid("x\"; DROP TABLE y; --"));
    assert_false(util_sql_identifier_valid(""));
    char long_name[70];
    memset(long_name, 'a', 64);
    long_name[64] = '\0';
    assert_false(util_sql_identifier_valid(long_name));
    long_name[63] = '\0';
    assert_true(util_sql_identifier_valid(long_name));
}

/* ---- util_double_g17 against snprintf("%.17g") --------------------------------------------- */

typedef struct g17_count {
    uint64_t rand;    /* xorshift state */
    size_t checked;   /* values compared */
} g17_count;

/* Compares util_double_g17(v) with snprintf's "%.17g" of v, byte for byte and in length. */
static void g17_check(g17_count *c, double v)
{
    char want[64], got[UTIL_G17_MAX + 8];
    memset(got, 'X', sizeof got);
    int n = snprintf(want, sizeof want, "%.17g", v);
    size_t len = util_double_g17(v, got);
    c->checked++;
    if (n < 0 || len != (size_t)n || memcmp(got, want, (size_t)n + 1) != 0)
        fail_msg("util_double_g17(%a): \"%.*s\" (%zu bytes), snprintf: \"%s\"", v,
                 (int)(len < sizeof got ? len : sizeof got), got, len, want);
    assert_true(len < UTIL_G17_MAX);
}

/* Checks v and -v. */
static void g17_check_both(g17_count *c, double v)
{
    g17_check(c, v);
    g17_check(c, -v);
}

/* Returns: a random double in [0, 1) with 53 random bits. */
static double g17_unit(g17_count *c)
{
    return (double)(test_rand64(&c->rand) >> 11) * 0x1p-53;
}

/* Returns: v with a random sign. */
static double g17_signed(g17_count *c, double v)
{
    return (test_rand64(&c->rand) & 1) ? -v : v;
}

static void test_double_g17_special(void **state)
{
    (void)state;
    g17_count c = {.rand = 1};
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0.0, "0"},
        {-0.0, "-0"},
        {1.0, "1"},
        {-2.5, "-2.5"},
        {0.1, "0.10000000000000001"},
        {1e-5, "1.0000000000000001e-05"},
        {1e-4, "0.0001"},
        {123456789012345678.0, "1.2345678901234568e+17"},
        {1e16, "10000000000000000"},
        {1e17, "1e+17"},
        {1e15 + 0.25, "1000000000000000.2"}, /* the 18th digit is an exact 5: half to even */
        {1e15 + 0.75, "1000000000000000.8"},
        {0x1.fffffffffffffp-1, "0.99999999999999989"},
        {0x1p-53, "1.1102230246251565e-16"},
        {1e300, "1.0000000000000001e+300"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[UTIL_G17_MAX];
        size_t len = util_double_g17(cases[i].v, out);
        assert_string_equal(out, cases[i].text);
        assert_int_equal(len, strlen(cases[i].text));
    }
    const double specials[] = {
        0.0,     INFINITY, NAN,     DBL_MIN, DBL_MAX, DBL_TRUE_MIN, DBL_EPSILON,
        0x1p-1022 - 0x1p-1074, /* the largest denormal */
        1e-16,   1e38,     0x1p128, 0x1p127, 0x1p-54, 0x1p-53,      FLT_MAX,
        FLT_MIN, 1e17,     99999999999999999.0,       9.9999999999999995e-17};
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++)
        g17_check_both(&c, specials[i]);
    g17_check(&c, -NAN);
    /* every power of two and its neighbours, denormals included */
    for (int k = -1074; k <= 1023; k++) {
        double v = ldexp(1.0, k);
        g17_check_both(&c, v);
        g17_check_both(&c, nextafter(v, 0));
        g17_check_both(&c, nextafter(v, INFINITY));
    }
    /* powers of ten (the doubles nearest them), a few neighbours each way, and the doubles
     * nearest 9.9999999999999999eK and 9.99999999999999995eK, whose 17 digits carry into the
     * next power of ten or just do not */
    for (int k = -325; k <= 309; k++) {
        static const char *const mantissas[] = {"1", "9.9999999999999999", "9.99999999999999995",
                                                "5", "2.5"};
        for (size_t f = 0; f < sizeof mantissas / sizeof mantissas[0]; f++) {
            char text[40];
            snprintf(text, sizeof text, "%se%d", mantissas[f], k);
            double v = strtod(text, NULL), up = v, down = v;
            for (int j = 0; j < 4; j++, up = nextafter(up, INFINITY), down = nextafter(down, 0)) {
                g17_check_both(&c, up);
                g17_check_both(&c, down);
            }
        }
    }
    /* random denormals */
    for (int i = 0; i < 20000; i++) {
        uint64_t bits = test_rand64(&c.rand) & ((1ull << 52) - 1);
        double v;
        memcpy(&v, &bits, sizeof v);
        g17_check_both(&c, v);
    }
    assert_true(c.checked > 60000);
}

static void test_double_g17_random(void **state)
{
    (void)state;
    g17_count c = {.rand = 0x2545F4914F6CDD1Dull};
    for (int i = 0; i < 400000; i++) { /* random bit patterns: every exponent, inf and nan */
        uint64_t bits = test_rand64(&c.rand);
        double v;
        memcpy(&v, &bits, sizeof v);
        g17_check(&c, v);
    }
    for (int i = 0; i < 600000; i++) { /* bit patterns around the exact range, 2^-60..2^140 */
        uint64_t bits = test_rand64(&c.rand), exponent = 1023 - 60 + test_rand64(&c.rand) % 200;
        bits = (bits & 0x800FFFFFFFFFFFFFull) | exponent << 52;
        double v;
        memcpy(&v, &bits, sizeof v);
        g17_check(&c, v);
    }
    for (int i = 0; i < 300000; i++) { /* scores in [0, 1), and in [0, 1000) */
        double u = g17_unit(&c);
        g17_check(&c, u);
        g17_check(&c, g17_signed(&c, 1000.0 * g17_unit(&c)));
    }
    for (int i = 0; i < 300000; i++) { /* floats widened: vector scores */
        g17_check(&c, (double)(float)g17_signed(&c, g17_unit(&c)));
        uint32_t fbits = (uint32_t)test_rand64(&c.rand);
        float f;
        memcpy(&f, &fbits, sizeof f);
        g17_check(&c, (double)f);
    }
    for (int i = -100000; i <= 100000; i++) g17_check(&c, (double)i); /* small integers */
    for (int i = 0; i < 100000; i++) { /* integers past 2^53 and 1e17, exact in binary */
        g17_check(&c, 1e17 + 16.0 * (double)(test_rand64(&c.rand) % 1000000));
        uint64_t shift = test_rand64(&c.rand) % 12;
        g17_check(&c, g17_signed(&c, (double)(test_rand64(&c.rand) >> shift)));
    }
    for (int i = 0; i < 150000; i++) { /* timings with few digits: 0.0123, 12.5, 3e-05 */
        char text[40];
        int digits = 1 + (int)(test_rand64(&c.rand) % 17);
        double scale = ldexp(1.0, (int)(test_rand64(&c.rand) % 60) - 30);
        snprintf(text, sizeof text, "%.*g", digits, g17_unit(&c) * scale);
        g17_check(&c, g17_signed(&c, strtod(text, NULL)));
    }
    /* ties: k / 2^n with k odd is the exact decimal k * 5^n / 10^n, whose last digit is 5; with
     * k * 5^n in [10^17, 10^18) that 5 is the 18th significant digit, and %.17g rounds half to
     * even. With k * 5^n past 10^18 the digits after the 17th are exact but not a tie. */
    for (int i = 0; i < 300000; i++) {
        int n = 2 + (int)(test_rand64(&c.rand) % 24);
        double five_n = pow(5.0, n), high = 1e18 / five_n;
        double low = ceil(1e17 / five_n), top = high < 0x1p53 ? high : 0x1p53;
        uint64_t k = (uint64_t)low + test_rand64(&c.rand) % (uint64_t)(top - low);
        g17_check_both(&c, ldexp((double)(k | 1), -n));
        g17_check(&c, g17_signed(&c, ldexp((double)(test_rand64(&c.rand) >> 11), -n - 2)));
    }
    assert_true(c.checked > 3600000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_append_printf_steal),
        cmocka_unit_test(test_buf_steal_empty),
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_utf8_valid_forms),
        cmocka_unit_test(test_utf8_invalid_forms),
        cmocka_unit_test(test_utf8_first_invalid),
        cmocka_unit_test(test_utf8_clip),
        cmocka_unit_test_setup_teardown(test_mkdir_p, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_read_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_write_atomic, setup, teardown),
        cmocka_unit_test(test_path_join),
        cmocka_unit_test(test_err_first_wins),
        cmocka_unit_test(test_rc_names),
        cmocka_unit_test(test_log_level_parse),
        cmocka_unit_test(test_url_redact),
        cmocka_unit_test(test_double_g17_special),
        cmocka_unit_test(test_double_g17_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
