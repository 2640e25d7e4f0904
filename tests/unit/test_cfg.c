/* SPDX-License-Identifier: MIT */
/*
 * test_cfg.c - unit tests for src/cfg.c: the embedded defaults, config.example.ini (must equal
 * the defaults, key by key, so docs and code cannot drift), the table cases in
 * tests/data/cfg/<case>/{input,expected}, environment overrides and aliases, precedence, flags,
 * cfg_print redaction and freeing. Run from the repo root, or set RAGD_TEST_DATA to tests/data.
 */
#include <ctype.h>
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ragd/cfg.h"
#include "ragd/cfg_snapshot.h"

extern char **environ;

/* ---- helpers ------------------------------------------------------------------------------ */

static const char *data_dir(void)
{
    const char *d = getenv("RAGD_TEST_DATA");
    return d != NULL && d[0] != '\0' ? d : "tests/data";
}

/* Returns: new string data_dir()/rel (free with free()). */
static char *data_path(const char *rel)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", data_dir(), rel) > 0);
    return p;
}

/* Removes every variable ragd reads, so the developer's environment cannot leak into a test. */
static void env_clear(void)
{
    char *names[256];
    size_t n = 0;
    for (char **e = environ; e != NULL && *e != NULL && n < 256; e++) {
        if (strncmp(*e, "RAGD_", 5) != 0 || strncmp(*e, "RAGD_TEST_DATA=", 15) == 0) continue;
        size_t len = strcspn(*e, "=");
        names[n] = strndup(*e, len);
        assert_non_null(names[n]);
        n++;
    }
    for (size_t i = 0; i < n; i++) {
        unsetenv(names[i]);
        free(names[i]);
    }
    unsetenv("RAG_ENABLED");
    unsetenv("VECTOR_BACKEND");
    unsetenv("DATABASE_URL");
    unsetenv("OPENAI_API_KEY");
}

static int env_reset(void **state)
{
    (void)state;
    env_clear();
    return 0;
}

/* Returns: cfg_print's output as a new string (free with free()). */
static char *print_to_string(const ragd_cfg *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    cfg_print(cfg, f);
    assert_int_equal(fclose(f), 0);
    return text;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

/* A minimal INI reader for checking output: "section.key" -> value pairs, comments skipped. */
#define INI_KEYS_MAX 256 /* keys one parsed INI file may hold in these tests */
typedef struct kv_list {
    char *name[INI_KEYS_MAX];
    char *value[INI_KEYS_MAX];
    size_t n;
} kv_list;

static void kv_parse(const char *text, kv_list *out)
{
    char *copy = strdup(text);
    assert_non_null(copy);
    char section[64] = "";
    out->n = 0;
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *t = trim(line);
        if (t[0] == '\0' || t[0] == '#' || t[0] == ';') continue;
        if (t[0] == '[') {
            char *end = strchr(t, ']');
            assert_non_null(end);
            *end = '\0';
            snprintf(section, sizeof section, "%s", t + 1);
            continue;
        }
        char *eq = strchr(t, '=');
        assert_non_null(eq);
        *eq = '\0';
        assert_true(out->n < INI_KEYS_MAX);
        /* Lines before any [section] are already "section.key" (the expected files). */
        assert_true(asprintf(&out->name[out->n], "%s%s%s", section, section[0] ? "." : "",
                             trim(t)) > 0);
        out->value[out->n] = strdup(trim(eq + 1));
        assert_non_null(out->value[out->n]);
        out->n++;
    }
    free(copy);
}

static void kv_free(kv_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->name[i]);
        free(l->value[i]);
    }
    l->n = 0;
}

/* Returns: the value of "section.key" in l (borrowed), or NULL. */
static const char *kv_get(const kv_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->name[i], name) == 0) return l->value[i];
    return NULL;
}

/* Returns: the effective value of "section.key" as cfg_print shows it (new, free with free()). */
static char *cfg_value(const ragd_cfg *cfg, const char *name)
{
    char *text = print_to_string(cfg);
    kv_list l;
    kv_parse(text, &l);
    const char *v = kv_get(&l, name);
    char *copy = v != NULL ? strdup(v) : NULL;
    kv_free(&l);
    free(text);
    return copy;
}

static void assert_cfg_value(const ragd_cfg *cfg, const char *name, const char *want)
{
    char *got = cfg_value(cfg, name);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

/* Writes text to a new file in a new temp dir. Returns: the file path (new); *dir_out new. */
static char *temp_file_write(const char *text, char **dir_out)
{
    const char *tmp = getenv("TMPDIR");
    char *dir = NULL;
    assert_true(asprintf(&dir, "%s/ragd-test-cfg-XXXXXX", tmp && tmp[0] ? tmp : "/tmp") > 0);
    assert_non_null(mkdtemp(dir));
    char *path = NULL;
    assert_true(asprintf(&path, "%s/ragd.ini", dir) > 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    *dir_out = dir;
    return path;
}

static void temp_file_remove(char *path, char *dir)
{
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    free(path);
    free(dir);
}

/* Returns: a new copy of s with every occurrence of what replaced by with. */
static char *replace_all(const char *s, const char *what, const char *with)
{
    size_t wl = strlen(what), nl = strlen(with), count = 0;
    for (const char *p = strstr(s, what); p != NULL; p = strstr(p + wl, what)) count++;
    char *out = malloc(strlen(s) + count * nl + 1);
    assert_non_null(out);
    char *o = out;
    for (const char *p = s;;) {
        const char *hit = strstr(p, what);
        if (hit == NULL) {
            strcpy(o, p);
            break;
        }
        memcpy(o, p, (size_t)(hit - p));
        o += hit - p;
        memcpy(o, with, nl);
        o += nl;
        p = hit + wl;
    }
    return out;
}

static char *file_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    char *text = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&text, &cap, '\0', f);
    fclose(f);
    if (n < 0) {
        free(text);
        return strdup("");
    }
    return text;
}

/* ---- defaults and the example file -------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    ragd_cfg cfg;
    ragd_err err = {0};
    assert_int_equal(cfg_defaults_set(&cfg, &err), RAGD_OK);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8088);
    assert_int_equal(cfg.threads, 8);
    assert_int_equal(cfg.max_body_bytes, 1048576);
    assert_int_equal(cfg.connection_timeout_s, 30);
    assert_int_equal(cfg.rag_enabled, 1);
    assert_string_equal(cfg.data_dir, "var/vectorstore");
    assert_string_equal(cfg.vector_backend, "faiss");
    assert_int_equal(cfg.ingest_path_count, 1);
    assert_string_equal(cfg.ingest_paths[0], "docs");
    assert_null(cfg.ingest_paths[1]);
    assert_int_equal(cfg.ingest_on_start, 1);
    assert_int_equal(cfg.max_file_bytes, 10485760);
    assert_int_equal(cfg.chunk_target_tokens, 650);
    assert_int_equal(cfg.chunk_max_tokens, 800);
    assert_true(cfg.chunk_overlap > 0.1499 && cfg.chunk_overlap < 0.1501);
    assert_string_equal(cfg.embed_provider, "auto");
    assert_int_equal(cfg.embed_dims, 1024);
    assert_int_equal(cfg.embed_batch_size, 64);
    assert_string_equal(cfg.embed_api_key, "");
    assert_int_equal(cfg.retrieve_default_k, 5);
    assert_int_equal(cfg.retrieve_max_k, 50);
    assert_true(cfg.retrieve_min_score == 0.0);
    assert_string_equal(cfg.log_level, "info");
    assert_int_equal(cfg_validate(&cfg, &err), RAGD_OK);
    assert_int_equal(err.rc, RAGD_OK);
    cfg_free(&cfg);
    assert_null(cfg.listen_host);
}

/* The example file states every key, at exactly the value cfg_print shows for the defaults, and
 * loading it changes nothing. */
static void test_example_equals_defaults(void **state)
{
    (void)state;
    char *example_path = data_path("../../config.example.ini");
    char *example = file_slurp(example_path);
    assert_non_null(example);

    ragd_cfg defaults, loaded;
    ragd_err err = {0};
    assert_int_equal(cfg_defaults_set(&defaults, &err), RAGD_OK);
    assert_int_equal(cfg_defaults_set(&loaded, &err), RAGD_OK);
    assert_int_equal(cfg_file_load(&loaded, example_path, &err), RAGD_OK);
    assert_int_equal(cfg_validate(&loaded, &err), RAGD_OK);

    char *want = print_to_string(&defaults);
    char *got = print_to_string(&loaded);
    assert_string_equal(got, want);

    kv_list from_defaults, from_example;
    kv_parse(want, &from_defaults);
    kv_parse(example, &from_example);
    assert_true(from_defaults.n >= 20);
    assert_int_equal(from_example.n, from_defaults.n);
    for (size_t i = 0; i < from_defaults.n; i++) {
        const char *v = kv_get(&from_example, from_defaults.name[i]);
        if (v == NULL) fail_msg("config.example.ini lacks %s", from_defaults.name[i]);
        if (strcmp(v, from_defaults.value[i]) != 0)
            fail_msg("config.example.ini: %s = '%s', default is '%s'", from_defaults.name[i], v,
                     from_defaults.value[i]);
    }

    /* docs/CONFIG.md and the example name every key's environment variable. */
    char *doc_path = data_path("../../docs/CONFIG.md");
    char *doc = file_slurp(doc_path);
    assert_non_null(doc);
    for (size_t i = 0; i < from_defaults.n; i++) {
        char env[128];
        snprintf(env, sizeof env, "RAGD_%s", from_defaults.name[i]);
        for (char *p = env; *p; p++) *p = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
        if (strstr(doc, env) == NULL) fail_msg("docs/CONFIG.md does not mention %s", env);
        if (strstr(example, env) == NULL) fail_msg("config.example.ini does not mention %s", env);
    }

    free(doc);
    free(doc_path);
    kv_free(&from_defaults);
    kv_free(&from_example);
    free(want);
    free(got);
    cfg_free(&defaults);
    cfg_free(&loaded);
    free(example);
    free(example_path);
}

/* ---- table cases -------------------------------------------------------------------------- */

/* Runs one tests/data/cfg/<name> case. Returns: 0 if it passed, else prints why and returns 1. */
static int case_run(const char *dir, const char *name)
{
    char *input = NULL, *expected_path = NULL;
    assert_true(asprintf(&input, "%s/%s/input", dir, name) > 0);
    assert_true(asprintf(&expected_path, "%s/%s/expected", dir, name) > 0);
    char *expected = file_slurp(expected_path);
    assert_non_null(expected);

    int failed = 0;
    ragd_cfg cfg;
    ragd_err err = {0};
    ragd_rc rc = cfg_load(&cfg, input, &err);
    if (strncmp(expected, "error: ", 7) == 0) {
        char *want = trim(expected + 7);
        char *got = replace_all(err.msg, input, "FILE");
        if (rc == RAGD_OK) {
            fprintf(stderr, "case %s: loaded, expected error '%s'\n", name, want);
            failed = 1;
        } else if (rc != RAGD_ERR_CONFIG || strcmp(got, want) != 0) {
            fprintf(stderr, "case %s:\n  want: %s\n  got:  %s (%s)\n", name, want, got,
                    ragd_rc_name(rc));
            failed = 1;
        } else if (cfg.listen_host != NULL || cfg.data_dir != NULL) {
            fprintf(stderr, "case %s: cfg not left freed after failure\n", name);
            failed = 1;
        }
        free(got);
    } else if (rc != RAGD_OK) {
        fprintf(stderr, "case %s: unexpected error: %s\n", name, err.msg);
        failed = 1;
    } else {
        kv_list want, got;
        char *text = print_to_string(&cfg);
        kv_parse(expected, &want);
        kv_parse(text, &got);
        if (want.n == 0) {
            fprintf(stderr, "case %s: expected file checks nothing\n", name);
            failed = 1;
        }
        for (size_t i = 0; i < want.n; i++) {
            const char *v = kv_get(&got, want.name[i]);
            if (v == NULL || strcmp(v, want.value[i]) != 0) {
                fprintf(stderr, "case %s: %s: want '%s', got '%s'\n", name, want.name[i],
                        want.value[i], v ? v : "(missing)");
                failed = 1;
            }
        }
        kv_free(&want);
        kv_free(&got);
        free(text);
    }
    cfg_free(&cfg);
    free(expected);
    free(expected_path);
    free(input);
    return failed;
}

static int name_compare(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_table_cases(void **state)
{
    (void)state;
    char *dir = data_path("cfg");
    DIR *d = opendir(dir);
    if (d == NULL) fail_msg("cannot open %s (run from the repo root or set RAGD_TEST_DATA)", dir);
    char *names[256];
    size_t n = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (de->d_name[0] == '.') continue;
        assert_true(n < 256);
        names[n] = strdup(de->d_name);
        assert_non_null(names[n]);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof names[0], name_compare);
    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        failures += case_run(dir, names[i]);
        free(names[i]);
    }
    free(dir);
    assert_true(n >= 30);
    assert_int_equal(failures, 0);
}

/* ---- files: failures ---------------------------------------------------------------------- */

static void test_missing_file(void **state)
{
    (void)state;
    ragd_cfg cfg;
    ragd_err err = {0};
    assert_int_equal(cfg_load(&cfg, "/nonexistent/ragd.ini", &err), RAGD_ERR_CONFIG);
    assert_string_equal(err.msg, "/nonexistent/ragd.ini: cannot open config file: "
                                 "No such file or directory");
    assert_null(cfg.listen_host);
    cfg_free(&cfg); /* safe again after a failed load */
}

/* A failing file leaves the config it was applied over untouched, and leaks nothing. */
static void test_file_failure_leaves_cfg(void **state)
{
    (void)state;
    char *dir = NULL;
    char *path = temp_file_write("[server]\nthreads = 9\nlisten = 127.0.0.1:7001\n"
                                 "[store]\ndata_dir = /tmp/x\nbogus = 1\n",
                                 &dir);
    ragd_cfg cfg;
    ragd_err err = {0};
    assert_int_equal(cfg_defaults_set(&cfg, &err), RAGD_OK);
    assert_int_equal(cfg_file_load(&cfg, path, &err), RAGD_ERR_CONFIG);
    assert_non_null(strstr(err.msg, ":6: unknown key 'bogus' in section [store]"));
    assert_int_equal(cfg.threads, 8);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_string_equal(cfg.data_dir, "var/vectorstore");
    cfg_free(&cfg);

    /* cfg_load with the same file: fails, cfg zeroed, nothing leaked (LeakSanitizer checks). */
    ragd_err err2 = {0};
    assert_int_equal(cfg_load(&cfg, path, &err2), RAGD_ERR_CONFIG);
    assert_string_equal(err2.msg, err.msg);
    assert_null(cfg.data_dir);
    assert_null(cfg.ingest_paths);
    temp_file_remove(path, dir);
}

/* The first error wins: a failing load does not overwrite an error already in err. */
static void test_first_error_wins(void **state)
{
    (void)state;
    ragd_cfg cfg;
    ragd_err err = {0};
    ragd_err_set(&err, RAGD_ERR_IO, "earlier");
    assert_int_equal(cfg_load(&cfg, "/nonexistent/ragd.ini", &err), RAGD_ERR_CONFIG);
    assert_int_equal(err.rc, RAGD_ERR_IO);
    assert_string_equal(err.msg, "earlier");
}

/* ---- environment -------------------------------------------------------------------------- */

static void test_env_overrides(void **state)
{
    (void)state;
    ragd_cfg cfg;
    ragd_err err = {0};
    setenv("RAGD_SERVER_THREADS", "12", 1);
    setenv("RAGD_SERVER_LISTEN", "[::1]:9100", 1);
    setenv("RAGD_SERVER_MAX_BODY_BYTES", "4m", 1);
    setenv("RAGD_INGEST_PATHS", "a:b::c", 1);
    setenv("RAGD_CHUNK_OVERLAP", "0.2", 1);
    setenv("RAGD_LOG_LEVEL", "debug", 1);
    setenv("RAGD_INGEST_ON_START", "", 1); /* empty non-string: unset */
    assert_int_equal(cfg_load(&cfg, NULL, &err), RAGD_OK);
    assert_int_equal(cfg.threads, 12);
    assert_string_equal(cfg.listen_host, "::1");
    assert_int_equal(cfg.listen_port, 9100);
    assert_int_equal(cfg.max_body_bytes, 4 * 1024 * 1024);
    assert_int_equal(cfg.ingest_path_count, 3);
    assert_string_equal(cfg.ingest_paths[2], "c");
    assert_true(cfg.chunk_overlap > 0.1999 && cfg.chunk_overlap < 0.2001);
    assert_string_equal(cfg.log_level, "debug");
    assert_int_equal(cfg.ingest_on_start, 1);
    cfg_free(&cfg);
}

static void test_env_aliases(void **state)
{
    (void)state;
    ragd_cfg cfg;
    ragd_err err = {0};
    setenv("RAG_ENABLED", "false", 1);
    setenv("OPENAI_API_KEY", "sk-alias", 1);
    setenv("VECTOR_BACKEND", "faiss", 1);
    assert_int_equal(cfg_load(&cfg, NULL, &err), RAGD_OK);
    assert_int_equal(cfg.rag_enabled, 0);
    assert_string_equal(cfg.embed_api_key, "sk-alias");
    assert_string_equal(cfg.vector_backend, "faiss");
    cfg_free(&cfg);

    /* The RAGD_ form wins over the alias; an empty string value still counts as set. */
    setenv("RAGD_RAG_ENABLED", "yes", 1);
    setenv("RAGD_EMBED_API_KEY", "", 1);
    assert_int_equal(cfg_load(&cfg, NULL, &err), RAGD_OK);
    assert_int_equal(cfg.rag_enabled, 1);
    assert_string_equal(cfg.embed_api_key, "");
    cfg_free(&cfg);

    /* An empty RAGD_ value for a bool counts as unset, so the alias applies. */
    setenv("RAGD_RAG_ENABLED", "", 1);
    assert_int_equal(cfg_load(&cfg, NULL, &err), RAGD_OK);
    assert_int_equal(cfg.rag_enabled, 0);
    cfg_free(&cfg);
}

static void test_env_vector_backend_refused(void **state)
{
    (void)state;
    ragd_cfg cfg;
    ragd_err err = {0};
    setenv("VECTOR_BACKEND", "milvus", 1);
    assert_int_equal(cfg_load(&cfg, NULL, &err), RAGD_ERR_CONFIG);
    assert_string_equal(err.msg, "environment VECTOR_BACKEND: vector_backend 'milvus' is not "
                                 "available in this build; supported: faiss, pgvector");
    assert_null(cfg.vector_backend);
    /* pgvector is built in, but needs a database URL */
    ragd_err_clear(&err);
    setenv("VECTOR_BACKEND", "pgvector", 1);
    assert_int_equal(cfg_load(&cfg, NULL, &err), RAGD_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "database_url"));
    assert_null(cfg.vector_backend);
    ragd_err_clear(&err);
    setenv("DATABASE_URL", "postgresql://app:s3cret@db.example:5432/app", 1);
    assert_int_equal(cfg_load(&cfg, NULL, &err), RAGD_OK);
    assert_string_equal(cfg.vector_backend, "pgvector");
    assert_string_equal(cfg.database_url, "postgresql://app:s3cret@db.example:5432/app");
    cfg_free(&cfg);
    unsetenv("DATABASE_URL");
}

/* A bad variable fails with its name, and cfg_env_apply changes nothing when it fails. */
static void test_env_bad_value(void **state)
{
    (void)state;
    ragd_cfg cfg;
    ragd_err err = {0};
    assert_int_equal(cfg_defaults_set(&cfg, &err), RAGD_OK);
    setenv("RAGD_SERVER_LISTEN", "127.0.0.1:7777", 1);
    setenv("RAGD_SERVER_THREADS", "abc", 1);
    assert_int_equal(cfg_env_apply(&cfg, &err), RAGD_ERR_CONFIG);
    assert_string_equal(err.msg, "environment RAGD_SERVER_THREADS: 'abc' is not an integer");
    assert_int_equal(cfg.listen_port, 8088);
    assert_int_equal(cfg.threads, 8);
    cfg_free(&cfg);

    ragd_err err2 = {0};
    setenv("RAGD_SERVER_THREADS", "4", 1);
    setenv("RAGD_SERVER_LISTEN", "localhost:0", 1);
    assert_int_equal(cfg_load(&cfg, NULL, &err2), RAGD_ERR_CONFIG);
    assert_string_equal(err2.msg,
                        "environment RAGD_SERVER_LISTEN: port 0 is not allowed; pick a fixed port");
}

/* defaults < file < environment < flags, and RAGD_CONFIG names the file when no path is given. */
static void test_precedence(void **state)
{
    (void)state;
    char *dir = NULL;
    char *path = temp_file_write("[server]\nthreads = 2\nlisten = 127.0.0.1:7002\n"
                                 "[retrieve]\nmax_k = 20\n",
                                 &dir);
    ragd_cfg cfg;
    ragd_err err = {0};
    setenv("RAGD_SERVER_THREADS", "6", 1);
    assert_int_equal(cfg_load(&cfg, path, &err), RAGD_OK);
    assert_int_equal(cfg.threads, 6);           /* environment over file */
    assert_int_equal(cfg.listen_port, 7002);    /* file over defaults */
    assert_int_equal(cfg.retrieve_max_k, 20);   /* file over defaults */
    assert_int_equal(cfg.embed_dims, 1024);     /* default */
    assert_int_equal(cfg_key_set(&cfg, "server", "threads", "7", "--threads", &err), RAGD_OK);
    assert_int_equal(cfg.threads, 7);           /* flag over environment */
    cfg_free(&cfg);

    unsetenv("RAGD_SERVER_THREADS");
    setenv("RAGD_CONFIG", path, 1);
    assert_int_equal(cfg_load(&cfg, NULL, &err), RAGD_OK);
    assert_int_equal(cfg.threads, 2);
    cfg_free(&cfg);
    unsetenv("RAGD_CONFIG");
    temp_file_remove(path, dir);
}

/* ---- flags -------------------------------------------------------------------------------- */

static void test_key_set(void **state)
{
    (void)state;
    ragd_cfg cfg;
    ragd_err err = {0};
    assert_int_equal(cfg_defaults_set(&cfg, &err), RAGD_OK);
    assert_int_equal(cfg_key_set(&cfg, "server", "listen", "127.0.0.1:0", "--listen", &err),
                     RAGD_ERR_CONFIG);
    assert_string_equal(err.msg, "--listen: port 0 is not allowed; pick a fixed port");
    assert_int_equal(cfg.listen_port, 8088); /* unchanged */

    ragd_err err2 = {0};
    assert_int_equal(cfg_key_set(&cfg, "store", "data_dir", "/srv/ragd", "--data-dir", &err2),
                     RAGD_OK);
    assert_string_equal(cfg.data_dir, "/srv/ragd");
    assert_int_equal(cfg_key_set(&cfg, "log", "level", "error", "--log-level", &err2), RAGD_OK);
    assert_string_equal(cfg.log_level, "error");
    assert_int_equal(cfg_key_set(&cfg, "server", "nope", "1", "--nope", &err2), RAGD_ERR_CONFIG);
    assert_non_null(strstr(err2.msg, "--nope: unknown key 'nope' in section [server]"));
    cfg_free(&cfg);
}

/* ---- validation --------------------------------------------------------------------------- */

static void test_validate(void **state)
{
    (void)state;
    ragd_cfg cfg;
    ragd_err err = {0};
    assert_int_equal(cfg_defaults_set(&cfg, &err), RAGD_OK);
    cfg.threads = 0; /* set directly, bypassing the setters */
    assert_int_equal(cfg_validate(&cfg, &err), RAGD_ERR_CONFIG);
    assert_string_equal(err.msg, "server.threads = 0 is out of range 1..256");
    cfg.threads = 4;

    ragd_err err2 = {0};
    free(cfg.vector_backend);
    cfg.vector_backend = strdup("milvus");
    assert_non_null(cfg.vector_backend);
    assert_int_equal(cfg_validate(&cfg, &err2), RAGD_ERR_CONFIG);
    assert_non_null(strstr(err2.msg, "'milvus' is not available in this build; supported: faiss"));
    cfg_free(&cfg);
}

/* ---- printing and freeing ----------------------------------------------------------------- */

static void test_print_redacts_secret(void **state)
{
    (void)state;
    ragd_cfg cfg;
    ragd_err err = {0};
    assert_int_equal(cfg_defaults_set(&cfg, &err), RAGD_OK);
    char *text = print_to_string(&cfg);
    assert_non_null(strstr(text, "\napi_key = \n"));
    assert_non_null(strstr(text, "\n[server]\n# listen: "));
    assert_non_null(strstr(text, "(default 127.0.0.1:8088)\nlisten = 127.0.0.1:8088\n"));
    assert_non_null(strstr(text, "\n[log]\n"));
    free(text);

    assert_int_equal(cfg_key_set(&cfg, "embed", "api_key", "sk-very-secret", "test", &err),
                     RAGD_OK);
    assert_int_equal(cfg_key_set(&cfg, "ingest", "paths", "docs:more", "test", &err), RAGD_OK);
    text = print_to_string(&cfg);
    assert_null(strstr(text, "sk-very-secret"));
    assert_non_null(strstr(text, "\napi_key = <redacted>\n"));
    assert_non_null(strstr(text, "\npaths = docs:more\n"));
    free(text);
    cfg_free(&cfg);
}

/* cfg_print's output (no secrets set) loads back to the same configuration. */
static void test_print_round_trip(void **state)
{
    (void)state;
    ragd_cfg cfg;
    ragd_err err = {0};
    assert_int_equal(cfg_defaults_set(&cfg, &err), RAGD_OK);
    assert_int_equal(cfg_key_set(&cfg, "server", "listen", "[::1]:8099", "t", &err), RAGD_OK);
    assert_int_equal(cfg_key_set(&cfg, "chunk", "overlap", "0.1", "t", &err), RAGD_OK);
    assert_int_equal(cfg_key_set(&cfg, "retrieve", "min_score", "0.333", "t", &err), RAGD_OK);
    char *text = print_to_string(&cfg);
    char *dir = NULL;
    char *path = temp_file_write(text, &dir);
    ragd_cfg back;
    assert_int_equal(cfg_load(&back, path, &err), RAGD_OK);
    char *again = print_to_string(&back);
    assert_string_equal(again, text);
    assert_cfg_value(&back, "server.listen", "[::1]:8099");
    assert_cfg_value(&back, "chunk.overlap", "0.1");
    free(again);
    free(text);
    cfg_free(&back);
    cfg_free(&cfg);
    temp_file_remove(path, dir);
}

/* SIGHUP reload: a new configuration is built with the live keys changed, the others named and
 * kept; the current one is never written (requests may be reading it). */
static void test_reload_build(void **state)
{
    (void)state;
    ragd_cfg cfg, fresh, next;
    ragd_err err = {0};
    assert_int_equal(cfg_defaults_set(&cfg, &err), RAGD_OK);
    assert_int_equal(cfg_defaults_set(&fresh, &err), RAGD_OK);
    util_buf applied = {0}, restart = {0};
    assert_int_equal(cfg_reload_build(&cfg, &fresh, &next, &applied, &restart, &err), RAGD_OK);
    assert_int_equal(applied.len, 0); /* nothing changed */
    assert_int_equal(restart.len, 0);
    cfg_free(&next);

    const char *old_level = cfg.log_level;
    assert_int_equal(cfg_key_set(&fresh, "retrieve", "min_score", "0.25", "t", &err), RAGD_OK);
    assert_int_equal(cfg_key_set(&fresh, "retrieve", "default_k", "3", "t", &err), RAGD_OK);
    assert_int_equal(cfg_key_set(&fresh, "log", "level", "debug", "t", &err), RAGD_OK);
    assert_int_equal(cfg_key_set(&fresh, "rag", "enabled", "false", "t", &err), RAGD_OK);
    assert_int_equal(cfg_key_set(&fresh, "server", "threads", "9", "t", &err), RAGD_OK);
    assert_int_equal(cfg_key_set(&fresh, "store", "data_dir", "/elsewhere", "t", &err), RAGD_OK);
    assert_int_equal(cfg_key_set(&fresh, "embed", "api_key", "sk-secret", "t", &err), RAGD_OK);
    assert_int_equal(cfg_reload_build(&cfg, &fresh, &next, &applied, &restart, &err), RAGD_OK);
    assert_string_equal(applied.data,
                        "rag.enabled, retrieve.default_k, retrieve.min_score, log.level");
    assert_string_equal(restart.data, "server.threads, store.data_dir, embed.api_key");
    assert_null(strstr(restart.data, "sk-secret")); /* names only, never values */
    assert_true(next.retrieve_min_score == 0.25);
    assert_int_equal(next.retrieve_default_k, 3);
    assert_int_equal(next.rag_enabled, 0);
    assert_string_equal(next.log_level, "debug");
    assert_int_equal(next.threads, 8);
    assert_string_equal(next.data_dir, "var/vectorstore");
    assert_string_equal(next.embed_api_key, "");
    /* the current configuration is untouched */
    assert_true(cfg.retrieve_min_score != 0.25);
    assert_int_equal(cfg.rag_enabled, 1);
    assert_ptr_equal(cfg.log_level, old_level);
    assert_string_equal(cfg.log_level, "info");
    cfg_free(&next);

    /* default_k and max_k change together: the new pair is validated as a whole */
    util_buf_free(&applied);
    util_buf_free(&restart);
    assert_int_equal(cfg_key_set(&fresh, "retrieve", "max_k", "2", "t", &err), RAGD_OK);
    assert_int_equal(cfg_key_set(&fresh, "retrieve", "default_k", "2", "t", &err), RAGD_OK);
    assert_int_equal(cfg_reload_build(&cfg, &fresh, &next, &applied, &restart, &err), RAGD_OK);
    assert_int_equal(next.retrieve_max_k, 2);
    assert_int_equal(next.retrieve_default_k, 2);
    cfg_free(&next);

    assert_true(cfg_key_live("retrieve", "min_score"));
    assert_true(cfg_key_live("log", "log_queries"));
    assert_true(cfg_key_live("server", "shutdown_timeout"));
    assert_false(cfg_key_live("server", "listen"));
    assert_false(cfg_key_live("log", "file"));
    assert_false(cfg_key_live("nope", "nope"));
    util_buf_free(&applied);
    util_buf_free(&restart);
    cfg_free(&fresh);
    cfg_free(&cfg);
}

/* Snapshots: a reader keeps the one it took while a new one is published; the last release frees. */
static void test_snapshots(void **state)
{
    (void)state;
    ragd_cfg boot, fresh, next;
    ragd_err err = {0};
    assert_int_equal(cfg_defaults_set(&boot, &err), RAGD_OK);
    cfg_live *live = cfg_live_new(&boot);
    assert_non_null(live);
    const ragd_cfg *a = cfg_live_acquire(live);
    assert_ptr_not_equal(a, &boot); /* a copy: boot stays the caller's */
    assert_int_equal(a->retrieve_default_k, boot.retrieve_default_k);
    assert_int_equal(cfg_defaults_set(&fresh, &err), RAGD_OK);
    assert_int_equal(cfg_key_set(&fresh, "retrieve", "max_k", "7", "t", &err), RAGD_OK);
    assert_int_equal(cfg_key_set(&fresh, "retrieve", "default_k", "6", "t", &err), RAGD_OK);
    util_buf applied = {0}, restart = {0};
    assert_int_equal(cfg_reload_build(a, &fresh, &next, &applied, &restart, &err), RAGD_OK);
    assert_int_equal(cfg_live_publish(live, &next, &err), RAGD_OK);
    const ragd_cfg *b = cfg_live_acquire(live);
    /* the old reader sees the old pair, the new one the new pair: never half of each */
    assert_int_equal(a->retrieve_max_k, boot.retrieve_max_k);
    assert_int_equal(a->retrieve_default_k, boot.retrieve_default_k);
    assert_int_equal(b->retrieve_max_k, 7);
    assert_int_equal(b->retrieve_default_k, 6);
    cfg_live_release(a); /* frees the first snapshot (ASan checks) */
    cfg_live_release(b);
    cfg_live_free(live);
    util_buf_free(&applied);
    util_buf_free(&restart);
    cfg_free(&fresh);
    cfg_free(&boot);
}

static void test_free_zeroed_and_null(void **state)
{
    (void)state;
    ragd_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg_free(&cfg);
    cfg_free(NULL);
    assert_null(cfg.data_dir);
    assert_int_equal(cfg.ingest_path_count, 0);
    /* Freed twice is fine: cfg_free zeroes. */
    ragd_err err = {0};
    assert_int_equal(cfg_defaults_set(&cfg, &err), RAGD_OK);
    cfg_free(&cfg);
    cfg_free(&cfg);
    assert_null(cfg.ingest_paths);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, env_reset, env_reset),
        cmocka_unit_test_setup_teardown(test_example_equals_defaults, env_reset, env_reset),
        cmocka_unit_test_setup_teardown(test_table_cases, env_reset, env_reset),
        cmocka_unit_test_setup_teardown(test_missing_file, env_reset, env_reset),
        cmocka_unit_test_setup_teardown(test_file_failure_leaves_cfg, env_reset, env_reset),
        cmocka_unit_test_setup_teardown(test_first_error_wins, env_reset, env_reset),
        cmocka_unit_test_setup_teardown(test_env_overrides, env_reset, env_reset),
        cmocka_unit_test_setup_teardown(test_env_aliases, env_reset, env_reset),
        cmocka_unit_test_setup_teardown(test_env_vector_backend_refused, env_reset, env_reset),
        cmocka_unit_test_setup_teardown(test_env_bad_value, env_reset, env_reset),
        cmocka_unit_test_setup_teardown(test_precedence, env_reset, env_reset),
        cmocka_unit_test_setup_teardown(test_key_set, env_reset, env_reset),
        cmocka_unit_test_setup_teardown(test_validate, env_reset, env_reset),
        cmocka_unit_test_setup_teardown(test_print_redacts_secret, env_reset, env_reset),
        cmocka_unit_test_setup_teardown(test_print_round_trip, env_reset, env_reset),
        cmocka_unit_test_setup_teardown(test_reload_build, env_reset, env_reset),
        cmocka_unit_test_setup_teardown(test_snapshots, env_reset, env_reset),
        cmocka_unit_test_setup_teardown(test_free_zeroed_and_null, env_reset, env_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
