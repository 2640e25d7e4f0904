/* SPDX-License-Identifier: MIT */
/*
 * test_util.c - unit tests for the shared helpers: the growable buffer, SHA-256 against known
 * vectors, UTF-8 validation (valid forms, overlongs, surrogates, out of range, truncation, stray
 * continuation bytes), mkdir -p, whole-file reads with a size limit, atomic writes, path joins,
 * the error struct (first error wins, NULL err), ragd_rc names and log level parsing. Filesystem
 * tests work in their own mkdtemp directory and remove it.
 */
#include <errno.h>
#include <ftw.h>
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
