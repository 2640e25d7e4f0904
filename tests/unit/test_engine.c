/* SPDX-License-Identifier: MIT */
/*
 * test_engine.c - the engine end to end, in-process, over a real data dir: ingest of a small
 * generated markdown corpus and its report, retrieval quality on clear queries, incremental
 * re-ingest (unchanged, updated, removed, deduplicated), persistence of the vector index and its
 * rebuild when missing, corrupt or stale, the data-dir lock and read-only opens, embedding model
 * changes and --reset, failed ingests leaving the store as it was, filters and min_score, RAG
 * disabled, the report JSON, the context block, cancellation, per-file failures, and the
 * write-fault state (engine_fault.c).
 * Each test works in its own mkdtemp directory (docs/ for the corpus, data/ for the store) and
 * removes it.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "ragd/cfg.h"
#include "ragd/engine.h"
#include "ragd/filter.h"
#include "ragd/log.h"
#include "ragd/metrics.h"
#include "ragd/ragd.h"
#include "ragd/util.h"

#include "../../src/engine_int.h"
#include "test_support.h"

/* ---- fixture ------------------------------------------------------------------------------- */

typedef struct fixture {
    char base[256];
    char docs[300];
    char data[300];
    ragd_cfg cfg;
    engine *e;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL) return -1;
    if (test_tmpdir_make(f->base, sizeof f->base, "engine") != 0) {
        free(f);
        return -1;
    }
    snprintf(f->docs, sizeof f->docs, "%s/docs", f->base);
    snprintf(f->data, sizeof f->data, "%s/data", f->base);
    ragd_err err = {0};
    if (mkdir(f->docs, 0755) != 0 || cfg_defaults_set(&f->cfg, &err) != RAGD_OK ||
        cfg_key_set(&f->cfg, "store", "data_dir", f->data, "test", &err) != RAGD_OK ||
        cfg_key_set(&f->cfg, "ingest", "paths", f->docs, "test", &err) != RAGD_OK ||
        cfg_key_set(&f->cfg, "ingest", "on_start", "false", "test", &err) != RAGD_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        cfg_free(&f->cfg);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    engine_close(f->e);
    cfg_free(&f->cfg);
    int rc = test_tree_remove(f->base);
    free(f);
    return rc;
}

/* ---- helpers ------------------------------------------------------------------------------- */

static void file_put(const char *dir, const char *name, const char *text)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    assert_int_equal(util_mkdir_p(path, NULL), RAGD_OK);
    *slash = '/';
    assert_int_equal(test_file_write(dir, name, text), 0);
}

static void file_del(const char *dir, const char *name)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(unlink(path), 0);
}

static const char DOC_REFUNDS[] =
    "---\n"
    "title: Refund policy\n"
    "tags: [billing, policy]\n"
    "---\n"
    "# Refunds\n"
    "\n"
    "Customers may request a refund within thirty days of purchase. Refunds are paid back to\n"
    "the original payment card. A refund request needs the order number and the receipt.\n"
    "\n"
    "## Exceptions\n"
    "\n"
    "Gift cards and downloadable software are not refundable once the licence key was shown.\n";

static const char DOC_SHIPPING[] =
    "# Shipping\n"
    "\n"
    "Parcels leave the warehouse within two business days. Every parcel gets a courier\n"
    "tracking number by email; international parcels may need a customs declaration.\n"
    "\n"
    "## Delivery times\n"
    "\n"
    "Domestic courier delivery takes three to five days; express delivery arrives overnight.\n";

static const char DOC_INSTALL[] =
    "---\n"
    "tags:\n"
    "  - setup\n"
    "---\n"
    "# Installation\n"
    "\n"
    "Install the daemon with make install, then edit the configuration file to choose the\n"
    "listen port and the data directory. Start the service with systemctl.\n";

static const char DOC_GARDEN[] =
    "Gardening notes\n"
    "\n"
    "Tomatoes want compost, full sun and deep watering twice a week. Pinch the side shoots of\n"
    "tomato plants and mulch the beds with straw against slugs.\n";

/* Writes the four-document corpus under f->docs. */
static void corpus_write(fixture *f)
{
    file_put(f->docs, "refunds.md", DOC_REFUNDS);
    file_put(f->docs, "shipping.md", DOC_SHIPPING);
    file_put(f->docs, "guides/install.md", DOC_INSTALL);
    file_put(f->docs, "garden.txt", DOC_GARDEN);
}

static void engine_up(fixture *f, unsigned flags)
{
    ragd_err err = {0};
    assert_null(f->e);
    ragd_rc rc = engine_open(&f->cfg, flags, &f->e, &err);
    if (rc != RAGD_OK) fail_msg("engine_open: %s (%s)", ragd_rc_name(rc), err.msg);
    assert_non_null(f->e);
}

static void engine_down(fixture *f)
{
    engine_close(f->e);
    f->e = NULL;
}

static void ingest_ok(fixture *f, const char *path, int reset, engine_ingest_report *r)
{
    ragd_err err = {0};
    memset(r, 0, sizeof *r);
    ragd_rc rc = engine_ingest(f->e, path, reset, NULL, NULL, r, &err);
    if (rc != RAGD_OK) fail_msg("engine_ingest(%s): %s (%s)", path, ragd_rc_name(rc), err.msg);
}

/* The usual start of a test: the corpus written, an engine open on it, one ingest done. */
static void corpus_ingested(fixture *f)
{
    corpus_write(f);
    engine_up(f, 0);
    engine_ingest_report r;
    ingest_ok(f, f->docs, 0, &r);
    engine_ingest_report_free(&r);
}

/* Runs an ingest that must fail with want; a report from an unexpected success is freed before
 * the assertion so a failure does not also show up as a leak. */
static void ingest_fails(engine *e, const char *path, int reset, ragd_rc want)
{
    engine_ingest_report r;
    memset(&r, 0, sizeof r);
    ragd_err err = {0};
    ragd_rc rc = engine_ingest(e, path, reset, NULL, NULL, &r, &err);
    int untouched = r.root == NULL && r.docs_seen == 0 && r.errors == NULL;
    engine_ingest_report_free(&r);
    if (rc != want)
        fail_msg("engine_ingest(%s, reset %d) = %s, want %s (%s)", path, reset, ragd_rc_name(rc),
                 ragd_rc_name(want), err.msg);
    assert_int_equal(err.rc, want);
    assert_true(untouched); /* a failed ingest leaves *report alone */
}

static engine_stats stats_of(engine *e)
{
    engine_stats s;
    ragd_err err = {0};
    assert_int_equal(engine_stats_get(e, &s, &err), RAGD_OK);
    return s;
}

/* Runs a query; asserts results are sorted best first and respect k and min_score. */
static void query_run(engine *e, const char *text, int k, double min_score, const char *prefix,
                      const char *const *tags, size_t ntags, engine_answer *a)
{
    engine_query q = {.query = text,
                      .query_len = strlen(text),
                      .k = k,
                      .min_score = min_score,
                      .source_prefix = prefix,
                      .tags_all = tags,
                      .tag_count = ntags};
    ragd_err err = {0};
    ragd_rc rc = engine_retrieve(e, &q, a, &err);
    if (rc != RAGD_OK) fail_msg("engine_retrieve(%s): %s (%s)", text, ragd_rc_name(rc), err.msg);
    assert_true(a->count <= (size_t)k);
    for (size_t i = 0; i < a->count; i++) {
        assert_true(a->results[i].score >= min_score);
        assert_true(a->results[i].hit.chunk_id > 0);
        assert_non_null(a->results[i].hit.source);
        assert_non_null(a->results[i].hit.text);
        if (i > 0) assert_true(a->results[i - 1].score >= a->results[i].score);
    }
}

static const char *top_source(engine *e, const char *text)
{
    static char source[256];
    engine_answer a;
    query_run(e, text, 3, -1.0, NULL, NULL, 0, &a);
    assert_true(a.count > 0);
    snprintf(source, sizeof source, "%s", a.results[0].hit.source);
    engine_answer_free(&a);
    return source;
}

/* A comparable summary of a query's results: chunk ids and scores. */
typedef struct result_set {
    size_t count;
    int64_t ids[16];
    double scores[16];
    char sources[16][64];
} result_set;

static result_set results_of(engine *e, const char *text, int k)
{
    result_set rs = {0};
    engine_answer a;
    assert_true(k <= 16);
    query_run(e, text, k, -1.0, NULL, NULL, 0, &a);
    rs.count = a.count;
    for (size_t i = 0; i < a.count; i++) {
        rs.ids[i] = a.results[i].hit.chunk_id;
        rs.scores[i] = a.results[i].score;
        snprintf(rs.sources[i], sizeof rs.sources[i], "%s", a.results[i].hit.source);
    }
    engine_answer_free(&a);
    return rs;
}

static void results_equal(const result_set *x, const result_set *y)
{
    assert_int_equal(x->count, y->count);
    for (size_t i = 0; i < x->count; i++) {
        assert_int_equal(x->ids[i], y->ids[i]);
        assert_string_equal(x->sources[i], y->sources[i]);
        assert_true(x->scores[i] - y->scores[i] < 1e-5 && y->scores[i] - x->scores[i] < 1e-5);
    }
}

static void data_path(const fixture *f, const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", f->data, name);
}

static ino_t inode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_ino;
}

static char *slurp(const char *path, size_t *len)
{
    char *out = NULL;
    assert_int_equal(util_file_read(path, 64u << 20, &out, len, NULL), RAGD_OK);
    return out;
}

static void spit(const char *path, const char *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static void stats_equal(const engine_stats *x, const engine_stats *y)
{
    assert_int_equal(x->documents, y->documents);
    assert_int_equal(x->chunks, y->chunks);
    assert_int_equal(x->embeddings, y->embeddings);
    assert_int_equal(x->index_vectors, y->index_vectors);
}

static void assert_consistent(engine *e)
{
    engine_stats s = stats_of(e);
    assert_true(s.chunks > 0);
    assert_int_equal(s.index_vectors, (size_t)s.chunks);
    assert_true(s.index_consistent);
}

static const char Q_REFUND[] = "how many days do customers have to request a refund";
static const char Q_SHIP[] = "courier tracking number for parcels";
static const char Q_INSTALL[] = "install the daemon and choose the listen port";
static const char Q_GARDEN[] = "tomatoes compost watering slugs";

/* ---- ingest and retrieve ------------------------------------------------------------------- */

typedef struct progress_log {
    size_t calls, last_done, total;
    int monotonic;
} progress_log;

static void progress_note(void *ctx, size_t done, size_t total, const char *relative)
{
    progress_log *p = ctx;
    if (done != p->last_done + 1 || relative == NULL || relative[0] == '\0') p->monotonic = 0;
    p->calls++;
    p->last_done = done;
    p->total = total;
}

static void test_ingest_report_and_retrieve(void **state)
{
    fixture *f = *state;
    corpus_write(f);
    engine_up(f, 0);
    engine_stats s0 = stats_of(f->e);
    assert_int_equal(s0.documents, 0);
    assert_int_equal(s0.chunks, 0);
    assert_int_equal(s0.index_vectors, 0);
    assert_int_equal(s0.last_ingest_at, 0);

    engine_ingest_report r;
    ragd_err err = {0};
    progress_log pl = {.monotonic = 1};
    memset(&r, 0, sizeof r);
    assert_int_equal(engine_ingest(f->e, f->docs, 0, progress_note, &pl, &r, &err), RAGD_OK);
    assert_int_equal(pl.calls, 4);
    assert_int_equal(pl.total, 4);
    assert_true(pl.monotonic);

    char real[PATH_MAX];
    assert_non_null(realpath(f->docs, real));
    assert_non_null(r.root);
    assert_string_equal(r.root, real);
    assert_int_equal(r.docs_seen, 4);
    assert_int_equal(r.docs_added, 4);
    assert_int_equal(r.docs_updated, 0);
    assert_int_equal(r.docs_unchanged, 0);
    assert_int_equal(r.docs_removed, 0);
    assert_int_equal(r.docs_failed, 0);
    assert_int_equal(r.error_count, 0);
    assert_int_equal(r.reset, 0);
    assert_true(r.chunks_added >= 4);
    assert_int_equal(r.chunks_removed, 0);
    assert_int_equal(r.chunks_embedded + r.chunks_deduplicated, r.chunks_added);
    assert_true(r.chunks_embedded >= 4);
    assert_true(r.duration_ms >= 0.0);

    engine_stats s = stats_of(f->e);
    assert_int_equal(s.documents, 4);
    assert_int_equal(s.chunks, r.chunks_added);
    assert_int_equal(s.embeddings, r.chunks_embedded);
    assert_int_equal(s.index_vectors, (size_t)s.chunks);
    assert_true(s.index_consistent);
    assert_true(s.index_bytes > 0);
    assert_int_equal(s.embed_dims, 1024);
    assert_string_equal(s.embed_provider, "local");
    assert_string_equal(s.embed_model, "ragd-local-v1");
    assert_int_equal(s.ingest_running, 0);
    assert_true(s.last_ingest_at > 0);
    assert_int_equal(s.last_ingest_ok, 1);

    assert_string_equal(top_source(f->e, Q_REFUND), "refunds.md");
    assert_string_equal(top_source(f->e, Q_SHIP), "shipping.md");
    assert_string_equal(top_source(f->e, Q_INSTALL), "guides/install.md");
    assert_string_equal(top_source(f->e, Q_GARDEN), "garden.txt");

    /* The hit carries the document's metadata. */
    engine_answer a;
    query_run(f->e, Q_REFUND, 1, -1.0, NULL, NULL, 0, &a);
    assert_int_equal(a.count, 1);
    assert_int_equal(a.rag_enabled, 1);
    assert_string_equal(a.results[0].hit.title, "Refund policy");
    assert_non_null(strstr(a.results[0].hit.tags_json, "billing"));
    assert_non_null(strstr(a.results[0].hit.text, "refund"));
    assert_null(strstr(a.results[0].hit.text, "title: Refund policy")); /* front matter gone */
    assert_true(a.candidates >= 1);
    engine_answer_free(&a);
    assert_int_equal(a.count, 0);
    assert_null(a.results);

    /* k is respected and k larger than the index gives every chunk once. */
    query_run(f->e, Q_REFUND, 2, -1.0, NULL, NULL, 0, &a);
    assert_int_equal(a.count, 2);
    engine_answer_free(&a);
    query_run(f->e, Q_REFUND, 50, -1.0, NULL, NULL, 0, &a);
    assert_true(a.count > 2);
    assert_true(a.count <= (size_t)s.chunks);
    for (size_t i = 0; i < a.count; i++) {
        /* hybrid (the default) scores are normalised to [0, 1]; vector mode drops cosines <= 0 */
        assert_true(a.results[i].score >= 0.0);
        assert_true(a.results[i].score <= 1.0 + 1e-5);
    }
    for (size_t i = 0; i < a.count; i++)
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(a.results[i].hit.chunk_id, a.results[j].hit.chunk_id);
    engine_answer_free(&a);

    /* k 0 is refused by the engine too. */
    engine_query q0 = {.query = Q_REFUND, .query_len = strlen(Q_REFUND), .k = 0};
    ragd_err_clear(&err);
    assert_int_equal(engine_retrieve(f->e, &q0, &a, &err), RAGD_ERR_INVALID);
    engine_ingest_report_free(&r);
    assert_null(r.root);
    engine_ingest_report_free(NULL);
    engine_answer_free(NULL);
}

static void test_reingest_unchanged(void **state)
{
    fixture *f = *state;
    corpus_ingested(f);
    engine_ingest_report r;
    engine_stats before = stats_of(f->e);
    result_set rs1 = results_of(f->e, Q_SHIP, 5);

    ingest_ok(f, f->docs, 0, &r);
    assert_int_equal(r.docs_seen, 4);
    assert_int_equal(r.docs_unchanged, 4);
    assert_int_equal(r.docs_added, 0);
    assert_int_equal(r.docs_updated, 0);
    assert_int_equal(r.docs_removed, 0);
    assert_int_equal(r.chunks_added, 0);
    assert_int_equal(r.chunks_removed, 0);
    assert_int_equal(r.chunks_embedded, 0);
    engine_ingest_report_free(&r);
    engine_stats after = stats_of(f->e);
    stats_equal(&before, &after);
    result_set rs2 = results_of(f->e, Q_SHIP, 5);
    results_equal(&rs1, &rs2);

}

static void test_single_file_ingest_keeps_siblings(void **state)
{
    /* Ingesting one file of an ingested directory touches that file only: its siblings are not
     * "documents that no longer exist". */
    fixture *f = *state;
    corpus_ingested(f);
    engine_ingest_report r;
    engine_stats before = stats_of(f->e);

    char one[700];
    snprintf(one, sizeof one, "%s/shipping.md", f->docs);
    ingest_ok(f, one, 0, &r);
    int64_t seen = r.docs_seen, unchanged = r.docs_unchanged, removed = r.docs_removed;
    engine_ingest_report_free(&r);
    assert_int_equal(seen, 1);
    assert_int_equal(unchanged, 1);
    assert_int_equal(removed, 0);
    engine_stats after = stats_of(f->e);
    stats_equal(&before, &after);
    assert_string_equal(top_source(f->e, Q_REFUND), "refunds.md");

    /* A new single file next to them is added without removing anything. */
    file_put(f->docs, "pets.md", "# Pets\n\nHamsters need a wheel, fresh hay and a quiet cage.\n");
    snprintf(one, sizeof one, "%s/pets.md", f->docs);
    ingest_ok(f, one, 0, &r);
    int64_t added = r.docs_added;
    removed = r.docs_removed;
    engine_ingest_report_free(&r);
    assert_int_equal(added, 1);
    assert_int_equal(removed, 0);
    assert_int_equal(stats_of(f->e).documents, 5);
}

static void test_single_file_keeps_source(void **state)
{
    /* A file ingested on its own keeps the source its directory ingest gave it, so source filters
     * keep matching; an unchanged file stays unchanged. */
    fixture *f = *state;
    corpus_ingested(f);
    engine_ingest_report r;
    char one[700];
    snprintf(one, sizeof one, "%s/guides/install.md", f->docs);
    ingest_ok(f, one, 0, &r);
    int64_t unchanged = r.docs_unchanged, updated = r.docs_updated;
    engine_ingest_report_free(&r);
    assert_int_equal(unchanged, 1);
    assert_int_equal(updated, 0);
    /* changed, then ingested alone: updated, still under guides/ */
    file_put(f->docs, "guides/install.md", "# Install\n\nUnpack the tarball and run make install.\n");
    ingest_ok(f, one, 0, &r);
    updated = r.docs_updated;
    engine_ingest_report_free(&r);
    assert_int_equal(updated, 1);
    assert_string_equal(top_source(f->e, "unpack the tarball and run make install"),
                        "guides/install.md");
}

static void test_non_utf8_file_name_reported(void **state)
{
    /* A file name that is not UTF-8 cannot go into JSON: it is reported (bytes shown as '?') and
     * skipped, and retrieval keeps working. */
    fixture *f = *state;
    corpus_write(f);
    file_put(f->docs, "caf\xe9.md", "# Cafe\n\nEspresso machines need descaling every month.\n");
    engine_up(f, 0);
    engine_ingest_report r;
    ingest_ok(f, f->docs, 0, &r);
    assert_int_equal(r.docs_failed, 1);
    assert_int_equal(r.docs_added, 4);
    assert_int_equal(r.error_count, 1);
    assert_string_equal(r.errors[0].source, "caf?.md");
    assert_string_equal(r.errors[0].code, "invalid");
    char *json = engine_ingest_report_json(&r);
    assert_non_null(json);
    free(json);
    engine_ingest_report_free(&r);
    assert_string_equal(top_source(f->e, Q_REFUND), "refunds.md");
}

/* Returns: how many file descriptors this process has open. */
static int open_fd_count(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_unreadable_dir_keeps_documents(void **state)
{
    /* A directory the crawl cannot open (here: out of file descriptors deep in a tree; in real
     * life also permissions) must not look like deleted files: nothing is removed and the report
     * says why. */
    fixture *f = *state;
    corpus_write(f);
    char rel[700] = "deep";
    for (int i = 0; i < 40; i++) {
        size_t n = strlen(rel);
        snprintf(rel + n, sizeof rel - n, "/d%d", i);
    }
    char name[760];
    snprintf(name, sizeof name, "%s/bottom.md", rel);
    file_put(f->docs, name, "# Bottom\n\nThe lowest level holds the submarine manual.\n");
    engine_up(f, 0);
    engine_ingest_report r;
    ingest_ok(f, f->docs, 0, &r);
    assert_int_equal(r.docs_added, 5);
    engine_ingest_report_free(&r);
    engine_stats before = stats_of(f->e);

    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)open_fd_count() + 16; /* far fewer than the tree's depth */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    ragd_err err = {0};
    memset(&r, 0, sizeof r);
    ragd_rc rc = engine_ingest(f->e, f->docs, 0, NULL, NULL, &r, &err);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    if (rc != RAGD_OK) fail_msg("engine_ingest: %s (%s)", ragd_rc_name(rc), err.msg);
    int64_t removed = r.docs_removed;
    size_t errors = r.error_count;
    int mentions = errors > 0 && strstr(r.errors[errors - 1].message, "could not be read") != NULL;
    engine_ingest_report_free(&r);
    assert_int_equal(removed, 0);
    assert_true(mentions);
    engine_stats after = stats_of(f->e);
    stats_equal(&before, &after);
    assert_string_equal(top_source(f->e, "submarine manual at the lowest level"), name);
}

static void test_modify_updates(void **state)
{
    fixture *f = *state;
    corpus_ingested(f);
    engine_ingest_report r;
    engine_stats before = stats_of(f->e);

    file_put(f->docs, "shipping.md",
             "# Shipping\n\nWe now ship by carrier pigeon only. Pigeons carry one small envelope\n"
             "each and fly home to the loft at dusk.\n");
    ingest_ok(f, f->docs, 0, &r);
    assert_int_equal(r.docs_seen, 4);
    assert_int_equal(r.docs_updated, 1);
    assert_int_equal(r.docs_unchanged, 3);
    assert_int_equal(r.docs_added, 0);
    assert_int_equal(r.docs_removed, 0);
    assert_true(r.chunks_removed > 0);
    assert_true(r.chunks_added > 0);
    assert_true(r.chunks_embedded > 0);
    engine_stats after = stats_of(f->e);
    assert_int_equal(after.documents, 4);
    assert_int_equal(after.chunks, before.chunks - r.chunks_removed + r.chunks_added);
    assert_consistent(f->e);
    engine_ingest_report_free(&r);

    assert_string_equal(top_source(f->e, "carrier pigeon envelope loft"), "shipping.md");
    /* The old text is gone from every chunk. */
    engine_answer a;
    query_run(f->e, Q_SHIP, 50, -1.0, NULL, NULL, 0, &a);
    assert_true(a.count > 0);
    for (size_t i = 0; i < a.count; i++)
        assert_null(strstr(a.results[i].hit.text, "tracking number"));
    engine_answer_free(&a);
}

static void test_delete_removes(void **state)
{
    fixture *f = *state;
    corpus_ingested(f);
    engine_ingest_report r;
    engine_stats before = stats_of(f->e);

    file_del(f->docs, "garden.txt");
    ingest_ok(f, f->docs, 0, &r);
    assert_int_equal(r.docs_seen, 3);
    assert_int_equal(r.docs_removed, 1);
    assert_int_equal(r.docs_unchanged, 3);
    assert_true(r.chunks_removed > 0);
    assert_int_equal(r.chunks_added, 0);
    engine_stats after = stats_of(f->e);
    assert_int_equal(after.documents, 3);
    assert_int_equal(after.chunks, before.chunks - r.chunks_removed);
    assert_consistent(f->e);
    engine_ingest_report_free(&r);

    engine_answer a;
    query_run(f->e, Q_GARDEN, 50, -1.0, NULL, NULL, 0, &a);
    for (size_t i = 0; i < a.count; i++) assert_string_not_equal(a.results[i].hit.source,
                                                                 "garden.txt");
    engine_answer_free(&a);

    /* Removing a subdirectory's only file removes it too. */
    file_del(f->docs, "guides/install.md");
    ingest_ok(f, f->docs, 0, &r);
    assert_int_equal(r.docs_removed, 1);
    engine_ingest_report_free(&r);
    assert_int_equal(stats_of(f->e).documents, 2);
}

static void test_duplicate_content_deduplicated(void **state)
{
    fixture *f = *state;
    corpus_ingested(f);
    engine_ingest_report r;
    engine_stats before = stats_of(f->e);

    file_put(f->docs, "refunds-copy.md", DOC_REFUNDS);
    ingest_ok(f, f->docs, 0, &r);
    assert_int_equal(r.docs_added, 1);
    assert_int_equal(r.docs_unchanged, 4);
    assert_true(r.chunks_added > 0);
    assert_int_equal(r.chunks_embedded, 0);
    assert_true(r.chunks_deduplicated > 0);
    assert_int_equal(r.chunks_deduplicated, r.chunks_added);
    engine_stats after = stats_of(f->e);
    assert_int_equal(after.documents, 5);
    assert_int_equal(after.embeddings, before.embeddings); /* no new embedding rows */
    assert_int_equal(after.chunks, before.chunks + r.chunks_added);
    assert_consistent(f->e);
    engine_ingest_report_free(&r);

    /* Both copies are found, with the same score. */
    engine_answer a;
    query_run(f->e, Q_REFUND, 2, -1.0, NULL, NULL, 0, &a);
    assert_int_equal(a.count, 2);
    assert_true(a.results[0].score - a.results[1].score < 1e-5);
    assert_string_not_equal(a.results[0].hit.source, a.results[1].hit.source);
    engine_answer_free(&a);
}

/* ---- persistence and index rebuilds -------------------------------------------------------- */

/* Ingests the corpus, records results for the four queries, closes. */
static void build_and_close(fixture *f, result_set rs[4])
{
    corpus_ingested(f);
    rs[0] = results_of(f->e, Q_REFUND, 5);
    rs[1] = results_of(f->e, Q_SHIP, 5);
    rs[2] = results_of(f->e, Q_INSTALL, 5);
    rs[3] = results_of(f->e, Q_GARDEN, 5);
    engine_down(f);
}

static void same_results(fixture *f, const result_set rs[4])
{
    result_set now[4] = {results_of(f->e, Q_REFUND, 5), results_of(f->e, Q_SHIP, 5),
                         results_of(f->e, Q_INSTALL, 5), results_of(f->e, Q_GARDEN, 5)};
    for (int i = 0; i < 4; i++) results_equal(&rs[i], &now[i]);
}

static void test_reopen_loads_index(void **state)
{
    fixture *f = *state;
    result_set rs[4];
    build_and_close(f, rs);
    char idx[400], meta[400];
    data_path(f, "index.faiss", idx, sizeof idx);
    data_path(f, "index.faiss.meta", meta, sizeof meta);
    ino_t ino = inode_of(idx), mino = inode_of(meta);

    engine_up(f, 0);
    assert_consistent(f->e);
    same_results(f, rs);
    engine_down(f);
    /* Loaded, not rebuilt: a rebuild saves a new file (new inode through rename). */
    assert_int_equal(inode_of(idx), ino);
    assert_int_equal(inode_of(meta), mino);
}

static void test_missing_index_rebuilt(void **state)
{
    fixture *f = *state;
    result_set rs[4];
    build_and_close(f, rs);
    char idx[400];
    data_path(f, "index.faiss", idx, sizeof idx);
    assert_int_equal(unlink(idx), 0);

    engine_up(f, 0);
    engine_stats s = stats_of(f->e);
    assert_int_equal(s.documents, 4);
    assert_int_equal(s.index_vectors, (size_t)s.chunks);
    assert_true(s.index_consistent);
    same_results(f, rs);
    /* The rebuilt index was saved. */
    assert_int_equal(access(idx, F_OK), 0);
    engine_down(f);
}

static void test_corrupt_index_rebuilt(void **state)
{
    fixture *f = *state;
    result_set rs[4];
    build_and_close(f, rs);
    char idx[400];
    data_path(f, "index.faiss", idx, sizeof idx);
    size_t len = 0;
    char *orig = slurp(idx, &len);
    assert_true(len > 64);
    char *bad = malloc(len);
    assert_non_null(bad);
    memcpy(bad, orig, len);
    bad[len - 17] ^= 0x40; /* inside the vector data: still parses, wrong content */
    spit(idx, bad, len);
    ino_t corrupt_ino = inode_of(idx);

    engine_up(f, 0);
    assert_consistent(f->e);
    same_results(f, rs);
    engine_down(f);
    assert_int_not_equal(inode_of(idx), corrupt_ino); /* rewritten */
    size_t nlen = 0;
    char *now = slurp(idx, &nlen);
    assert_false(nlen == len && memcmp(now, bad, len) == 0);
    free(now);

    /* A flipped byte in the header, and a garbage meta, are rebuilt too. */
    memcpy(bad, orig, len);
    bad[2] ^= 0x01;
    spit(idx, bad, len);
    engine_up(f, 0);
    assert_consistent(f->e);
    same_results(f, rs);
    engine_down(f);

    char meta[400];
    data_path(f, "index.faiss.meta", meta, sizeof meta);
    spit(meta, "{not json", 9);
    engine_up(f, 0);
    assert_consistent(f->e);
    same_results(f, rs);
    engine_down(f);
    size_t mlen = 0;
    char *m = slurp(meta, &mlen);
    json_t *mj = json_loadb(m, mlen, 0, NULL);
    assert_non_null(mj); /* a valid meta was written again */
    json_decref(mj);
    free(m);
    free(orig);
    free(bad);
}

static void copy_file(const char *from, const char *to)
{
    size_t len = 0;
    char *d = slurp(from, &len);
    spit(to, d, len);
    free(d);
}

/* The data dir's saved index and meta, and copies of them kept aside to bring back later (a
 * stale index, as a crash between an ingest's commits and its index save would leave). */
typedef struct saved_index {
    char idx[400], meta[400], idx_old[400], meta_old[400];
} saved_index;

static void index_set_aside(fixture *f, saved_index *sv)
{
    data_path(f, "index.faiss", sv->idx, sizeof sv->idx);
    data_path(f, "index.faiss.meta", sv->meta, sizeof sv->meta);
    snprintf(sv->idx_old, sizeof sv->idx_old, "%s/old.faiss", f->base);
    snprintf(sv->meta_old, sizeof sv->meta_old, "%s/old.faiss.meta", f->base);
    copy_file(sv->idx, sv->idx_old);
    copy_file(sv->meta, sv->meta_old);
}

static void index_put_back(const saved_index *sv)
{
    copy_file(sv->idx_old, sv->idx);
    copy_file(sv->meta_old, sv->meta);
}

static void test_stale_index_rebuilt(void **state)
{
    fixture *f = *state;
    result_set rs[4];
    build_and_close(f, rs);
    saved_index saved;
    index_set_aside(f, &saved);

    engine_up(f, 0);
    file_put(f->docs, "pets.md", "# Pets\n\nHamsters need a wheel, fresh hay and a quiet cage.\n");
    engine_ingest_report r;
    ingest_ok(f, f->docs, 0, &r);
    assert_int_equal(r.docs_added, 1);
    engine_ingest_report_free(&r);
    engine_down(f);

    index_put_back(&saved);
    engine_up(f, 0);
    engine_stats s = stats_of(f->e);
    assert_int_equal(s.documents, 5);
    assert_int_equal(s.index_vectors, (size_t)s.chunks);
    assert_true(s.index_consistent);
    assert_string_equal(top_source(f->e, "hamster wheel hay cage"), "pets.md");
    engine_down(f);
    /* The meta now records the current generation, not the stale one. */
    size_t a = 0, b = 0;
    char *m_now = slurp(saved.meta, &a), *m_old = slurp(saved.meta_old, &b);
    assert_false(a == b && memcmp(m_now, m_old, a) == 0);
    free(m_now);
    free(m_old);
}

static void test_stale_index_same_count_rebuilt(void **state)
{
    /* A stale index with exactly as many vectors as SQLite has chunks: only the generation tells
     * it apart. Loading it would return chunk ids that no longer exist. */
    fixture *f = *state;
    result_set rs[4];
    build_and_close(f, rs);
    saved_index saved;
    index_set_aside(f, &saved);

    engine_up(f, 0);
    engine_stats before = stats_of(f->e);
    /* Same shape (one chunk per section), different words. */
    file_put(f->docs, "garden.txt",
             "Gardening notes\n\nCucumbers want manure, warm soil and daily watering in July. Tie\n"
             "the cucumber vines to canes and net the beds against pigeons.\n");
    engine_ingest_report r;
    ingest_ok(f, f->docs, 0, &r);
    assert_int_equal(r.docs_updated, 1);
    engine_ingest_report_free(&r);
    engine_stats mid = stats_of(f->e);
    assert_int_equal(mid.chunks, before.chunks); /* the premise of this test */
    result_set want = results_of(f->e, "cucumber vines manure", 5);
    engine_down(f);

    index_put_back(&saved);
    engine_up(f, 0);
    assert_consistent(f->e);
    result_set got = results_of(f->e, "cucumber vines manure", 5);
    results_equal(&want, &got);
    assert_string_equal(got.sources[0], "garden.txt");
    engine_down(f);
}

/* ---- lock, read-only, model changes -------------------------------------------------------- */

static void test_lock_and_readonly(void **state)
{
    fixture *f = *state;
    corpus_ingested(f);

    long pid = -1;
    char listen[64] = "x";
    assert_int_equal(engine_lock_owner(f->data, &pid, listen, sizeof listen), 1);
    assert_int_equal(pid, (long)getpid());
    assert_string_equal(listen, "");
    engine_listen_note(f->e, "127.0.0.1", 8089);
    assert_int_equal(engine_lock_owner(f->data, &pid, listen, sizeof listen), 1);
    assert_int_equal(pid, (long)getpid());
    assert_string_equal(listen, "127.0.0.1:8089");

    engine *second = (engine *)0x1;
    ragd_err err = {0};
    assert_int_equal(engine_open(&f->cfg, 0, &second, &err), RAGD_ERR_LOCKED);
    assert_int_equal(err.rc, RAGD_ERR_LOCKED);
    assert_ptr_equal(second, (engine *)0x1); /* output untouched */
    char want[64];
    snprintf(want, sizeof want, "pid %ld", (long)getpid());
    if (strstr(err.msg, want) == NULL) fail_msg("lock message lacks \"%s\": %s", want, err.msg);
    assert_non_null(strstr(err.msg, "127.0.0.1:8089"));
    /* RESETTING does not bypass the lock either. */
    ragd_err_clear(&err);
    assert_int_equal(engine_open(&f->cfg, RAGD_ENGINE_RESETTING, &second, &err), RAGD_ERR_LOCKED);

    /* Read-only beside the writer: opens, answers, refuses ingest. */
    engine *ro = NULL;
    ragd_err_clear(&err);
    assert_int_equal(engine_open(&f->cfg, RAGD_ENGINE_READONLY, &ro, &err), RAGD_OK);
    assert_non_null(ro);
    result_set a = results_of(f->e, Q_INSTALL, 5), b = results_of(ro, Q_INSTALL, 5);
    results_equal(&a, &b);
    engine_stats s = stats_of(ro);
    assert_int_equal(s.documents, 4);
    assert_int_equal(s.index_vectors, (size_t)s.chunks);
    ingest_fails(ro, f->docs, 0, RAGD_ERR_UNSUPPORTED);
    engine_close(ro);
    /* Closing the reader leaves the writer's lock. */
    assert_int_equal(engine_lock_owner(f->data, &pid, listen, sizeof listen), 1);

    engine_down(f);
    assert_int_equal(engine_lock_owner(f->data, &pid, listen, sizeof listen), 0);
    assert_int_equal(pid, 0);
    engine_up(f, 0); /* and it can be taken again */
    engine_down(f);
}

static void set_dims(fixture *f, const char *dims)
{
    ragd_err err = {0};
    assert_int_equal(cfg_key_set(&f->cfg, "embed", "dims", dims, "test", &err), RAGD_OK);
}

static void test_dims_change_needs_reset(void **state)
{
    fixture *f = *state;
    corpus_ingested(f);
    engine_ingest_report r;
    engine_stats s_before = stats_of(f->e);
    engine_down(f);

    set_dims(f, "256");
    engine *e = (engine *)0x1;
    ragd_err err = {0};
    assert_int_equal(engine_open(&f->cfg, 0, &e, &err), RAGD_ERR_MODEL_MISMATCH);
    assert_ptr_equal(e, (engine *)0x1);
    if (strstr(err.msg, "--reset") == NULL) fail_msg("no --reset hint: %s", err.msg);
    /* A failed open released the lock. */
    long pid = 0;
    char listen[64];
    assert_int_equal(engine_lock_owner(f->data, &pid, listen, sizeof listen), 0);

    engine_up(f, RAGD_ENGINE_RESETTING);
    /* Without reset nothing may be written. */
    ingest_fails(f->e, f->docs, 0, RAGD_ERR_MODEL_MISMATCH);
    /* A bad path fails before the reset: the old store stays. */
    char missing[400];
    snprintf(missing, sizeof missing, "%s/nope", f->base);
    ingest_fails(f->e, missing, 1, RAGD_ERR_NOT_FOUND);
    engine_stats mid = stats_of(f->e);
    assert_int_equal(mid.documents, s_before.documents);
    assert_int_equal(mid.chunks, s_before.chunks);

    ingest_ok(f, f->docs, 1, &r);
    assert_int_equal(r.reset, 1);
    assert_int_equal(r.docs_added, 4);
    assert_true(r.chunks_embedded > 0);
    engine_ingest_report_free(&r);
    engine_stats s = stats_of(f->e);
    assert_int_equal(s.embed_dims, 256);
    assert_int_equal(s.documents, 4);
    assert_int_equal(s.index_vectors, (size_t)s.chunks);
    assert_true(s.index_consistent);
    assert_string_equal(top_source(f->e, Q_SHIP), "shipping.md");
    engine_down(f);

    /* The store is a 256-dims store now: it opens plainly with 256, not with another size. */
    engine_up(f, 0);
    assert_consistent(f->e);
    assert_string_equal(top_source(f->e, Q_REFUND), "refunds.md");
    engine_down(f);
    set_dims(f, "512");
    ragd_err_clear(&err);
    e = NULL;
    assert_int_equal(engine_open(&f->cfg, 0, &e, &err), RAGD_ERR_MODEL_MISMATCH);
    assert_null(e);
}

/* engine_retrieve keeps the query vector on the stack up to 2048 dims and on the heap above:
 * both sides of the bound, and the largest dims allowed, retrieve the right document (ASan
 * catches a vector written past a stack array that is too small). */
static void test_retrieve_dims_around_stack_bound(void **state)
{
    fixture *f = *state;
    const char *dims[] = {"2048", "2049", "4096"};
    corpus_write(f);
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        set_dims(f, dims[i]);
        engine_up(f, RAGD_ENGINE_RESETTING);
        engine_ingest_report r;
        ingest_ok(f, f->docs, 1, &r);
        engine_ingest_report_free(&r);
        engine_stats s = stats_of(f->e);
        assert_int_equal(s.embed_dims, atoi(dims[i]));
        assert_string_equal(top_source(f->e, Q_SHIP), "shipping.md");
        assert_string_equal(top_source(f->e, Q_REFUND), "refunds.md");
        engine_down(f);
    }
}

static void test_resetting_same_model_is_plain_open(void **state)
{
    fixture *f = *state;
    result_set rs[4];
    build_and_close(f, rs);
    engine_up(f, RAGD_ENGINE_RESETTING);
    same_results(f, rs);
    engine_ingest_report r;
    ingest_ok(f, f->docs, 0, &r); /* no pending model change: a plain ingest is fine */
    assert_int_equal(r.docs_unchanged, 4);
    engine_ingest_report_free(&r);
    ingest_ok(f, f->docs, 1, &r);
    assert_int_equal(r.docs_added, 4);
    /* reset empties documents and chunks but keeps embeddings: nothing is embedded again */
    assert_int_equal(r.chunks_embedded + r.chunks_deduplicated, r.chunks_added);
    assert_int_equal(r.chunks_embedded, 0);
    assert_true(r.chunks_deduplicated > 0);
    engine_ingest_report_free(&r);
    assert_consistent(f->e);
}

/* ---- failed ingests ------------------------------------------------------------------------ */

static void test_missing_path_leaves_store(void **state)
{
    fixture *f = *state;
    corpus_ingested(f);
    engine_ingest_report r;
    engine_stats before = stats_of(f->e);
    result_set rs = results_of(f->e, Q_REFUND, 5);

    char missing[400];
    snprintf(missing, sizeof missing, "%s/does-not-exist", f->docs);
    for (int reset = 0; reset <= 1; reset++) {
        ingest_fails(f->e, missing, reset, RAGD_ERR_NOT_FOUND);
        engine_stats after = stats_of(f->e);
        stats_equal(&before, &after);
        result_set now = results_of(f->e, Q_REFUND, 5);
        results_equal(&rs, &now);
    }
    /* And the next ingest still works (the ingest lock was released). */
    ingest_ok(f, f->docs, 0, &r);
    assert_int_equal(r.docs_unchanged, 4);
    engine_ingest_report_free(&r);
}

static void test_cancel_stops_ingest(void **state)
{
    fixture *f = *state;
    corpus_ingested(f);
    engine_stats before = stats_of(f->e);
    result_set rs = results_of(f->e, Q_SHIP, 5);

    file_put(f->docs, "shipping.md", "# Shipping\n\nCarrier pigeons only.\n");
    file_put(f->docs, "zzz-new.md", "# New\n\nA brand new document about hamsters.\n");
    engine_ingest_cancel(f->e);
    ingest_fails(f->e, f->docs, 0, RAGD_ERR_UNAVAILABLE);
    engine_stats after = stats_of(f->e);
    stats_equal(&before, &after);
    result_set now = results_of(f->e, Q_SHIP, 5);
    results_equal(&rs, &now);
    /* Refused before it started: it is not an ingest that ran, so the last one's status stays. */
    assert_int_equal(after.last_ingest_ok, before.last_ingest_ok);
    assert_int_equal(after.last_ingest_at, before.last_ingest_at);
    /* Every later ingest is refused too. */
    ingest_fails(f->e, f->docs, 0, RAGD_ERR_UNAVAILABLE);
    after = stats_of(f->e);
    stats_equal(&before, &after);
    engine_ingest_cancel(NULL);
}

static void test_cancel_then_reset_keeps_store(void **state)
{
    /* engine.h: an ingest that fails as a whole leaves the store as it was. After
     * engine_ingest_cancel, an ingest with reset must not empty the store and then fail. */
    fixture *f = *state;
    corpus_ingested(f);
    engine_stats before = stats_of(f->e);

    engine_ingest_cancel(f->e);
    ingest_fails(f->e, f->docs, 1, RAGD_ERR_UNAVAILABLE);
    engine_stats after = stats_of(f->e);
    stats_equal(&before, &after);
}

typedef struct cancel_ctx {
    engine *e;
    size_t calls;
    ragd_rc nested_rc;
    int running_seen;
} cancel_ctx;

static void cancel_on_first(void *ctx, size_t done, size_t total, const char *relative)
{
    (void)done;
    (void)total;
    (void)relative;
    cancel_ctx *c = ctx;
    c->calls++;
    if (c->calls > 1) return;
    /* While an ingest runs: a second one is BUSY, stats say running. */
    engine_ingest_report r;
    memset(&r, 0, sizeof r);
    c->nested_rc = engine_ingest(c->e, "/", 0, NULL, NULL, &r, NULL);
    engine_stats s;
    if (engine_stats_get(c->e, &s, NULL) == RAGD_OK) c->running_seen = s.ingest_running;
    engine_ingest_cancel(c->e);
}

static void test_cancel_during_ingest_keeps_committed(void **state)
{
    fixture *f = *state;
    corpus_write(f);
    f->cfg.ingest_commit_batch_bytes = 0; /* a file per commit: the file reported is committed */
    engine_up(f, 0);
    cancel_ctx c = {.e = f->e};
    engine_ingest_report r;
    memset(&r, 0, sizeof r);
    ragd_err err = {0};
    assert_int_equal(engine_ingest(f->e, f->docs, 0, cancel_on_first, &c, &r, &err),
                     RAGD_ERR_UNAVAILABLE);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.nested_rc, RAGD_ERR_BUSY);
    assert_int_equal(c.running_seen, 1);
    engine_stats s = stats_of(f->e);
    assert_int_equal(s.documents, 1); /* the first document was committed and stays */
    assert_int_equal(s.index_vectors, (size_t)s.chunks);
    assert_int_equal(s.ingest_running, 0);
    engine_down(f);
    /* The committed document survives a reopen, with a loadable index. */
    engine_up(f, 0);
    assert_int_equal(stats_of(f->e).documents, 1);
    assert_consistent(f->e);
}

typedef struct commit_watch {
    engine *e;
    size_t calls, ahead, last_done;
    int64_t documents_at[2]; /* at the first and the second progress call */
} commit_watch;

/* Progress callback: notes whether a file was reported before its document was committed. */
static void watch_commits(void *ctx, size_t done, size_t total, const char *relative)
{
    (void)total;
    (void)relative;
    commit_watch *w = ctx;
    engine_stats s = stats_of(w->e);
    if (s.documents < (int64_t)done) w->ahead++;
    if (w->calls < 2) w->documents_at[w->calls] = s.documents;
    w->calls++;
    w->last_done = done;
}

/* The test corpus plus 20 small notes (24 files). */
static void notes_corpus_write(fixture *f)
{
    corpus_write(f);
    for (int i = 0; i < 20; i++) {
        char name[64], text[160];
        snprintf(name, sizeof name, "notes/note%02d.md", i);
        snprintf(text, sizeof text, "# Note %d\n\nThe depot keeps pallet %d on shelf %d.\n", i,
                 i * 7, i);
        file_put(f->docs, name, text);
    }
}

/* Group commit: the first file is committed alone (its commit measures the lock time per byte);
 * with budgets nothing else reaches, the rest of the directory is one transaction; no file is
 * reported done before it is committed (what the SIGKILL test relies on), every file is reported
 * once it is, and the store is the one per-file commits give. */
static void test_batched_ingest_reports_committed(void **state)
{
    fixture *f = *state;
    /* more files than a batch's first allocation holds: the batch grows while files wait */
    notes_corpus_write(f);
    f->cfg.ingest_commit_batch_bytes = (size_t)1 << 30;
    f->cfg.ingest_commit_batch_ms = 60000;
    engine_up(f, 0);
    commit_watch w = {.e = f->e};
    engine_ingest_report r;
    memset(&r, 0, sizeof r);
    ragd_err err = {0};
    assert_int_equal(engine_ingest(f->e, f->docs, 0, watch_commits, &w, &r, &err), RAGD_OK);
    assert_int_equal(w.calls, 24);
    assert_int_equal(w.last_done, 24);
    assert_int_equal(w.ahead, 0);
    assert_int_equal(w.documents_at[0], 1);  /* the first file, alone */
    assert_int_equal(w.documents_at[1], 24); /* then one batch: the 23 others in one commit */
    assert_int_equal(r.docs_added, 24);
    engine_stats batched = stats_of(f->e);
    assert_int_equal(batched.chunks, r.chunks_added);
    assert_int_equal(batched.index_vectors, (size_t)batched.chunks);
    assert_int_equal(r.chunks_embedded + r.chunks_deduplicated, r.chunks_added);
    engine_ingest_report_free(&r);
    engine_down(f);
    engine_up(f, 0);
    assert_consistent(f->e);
    engine_down(f);

    /* the same corpus committed file by file gives the same store */
    test_tree_remove(f->data);
    f->cfg.ingest_commit_batch_bytes = 0;
    engine_up(f, 0);
    ingest_ok(f, f->docs, 0, &r);
    engine_stats single = stats_of(f->e);
    assert_int_equal(single.documents, batched.documents);
    assert_int_equal(single.chunks, batched.chunks);
    assert_int_equal(single.embeddings, batched.embeddings);
    engine_ingest_report_free(&r);
}

/* An ingest nobody waits for (no_lock_waiters: the CLI's) is batched by bytes alone: with a lock
 * budget of 1 ms, which a daemon's ingest would spend on every file (and the first file is
 * committed alone to measure it), the whole directory is one commit; a byte budget still splits
 * it, and commit_batch_ms 0 still commits file by file. No file is reported before its commit. */
static void test_batched_ingest_without_waiters(void **state)
{
    fixture *f = *state;
    notes_corpus_write(f);
    static const struct {
        size_t bytes;
        int ms;
        int64_t first, second; /* documents at the first and second progress calls */
    } cases[] = {
        {(size_t)1 << 30, 1, 24, 24}, /* one commit: every file reported after it */
        {1, 1, 1, 2},                 /* each file reaches the byte budget */
        {(size_t)1 << 30, 0, 1, 2},   /* commit_batch_ms 0: file by file */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        test_tree_remove(f->data);
        f->cfg.ingest_commit_batch_bytes = cases[c].bytes;
        f->cfg.ingest_commit_batch_ms = cases[c].ms;
        engine_up(f, 0);
        commit_watch w = {.e = f->e};
        engine_ingest_report r;
        memset(&r, 0, sizeof r);
        ragd_err err = {0};
        engine_ingest_opts io = {.path = f->docs, .progress = watch_commits, .progress_ctx = &w,
                                 .no_lock_waiters = 1};
        assert_int_equal(engine_ingest_run(f->e, &io, &r, &err), RAGD_OK);
        assert_int_equal(w.calls, 24);
        assert_int_equal(w.ahead, 0);
        assert_int_equal(w.documents_at[0], cases[c].first);
        assert_int_equal(w.documents_at[1], cases[c].second);
        assert_int_equal(r.docs_added, 24);
        engine_ingest_report_free(&r);
        engine_down(f);
    }
}

static void test_invalid_utf8_file_reported(void **state)
{
    fixture *f = *state;
    corpus_write(f);
    file_put(f->docs, "bad.md", "# Bad\n\nThis line has a stray byte \xff here.\n");
    engine_up(f, 0);
    engine_ingest_report r;
    ingest_ok(f, f->docs, 0, &r);
    assert_int_equal(r.docs_seen, 5);
    assert_int_equal(r.docs_failed, 1);
    assert_int_equal(r.docs_added, 4);
    assert_int_equal(r.error_count, 1);
    assert_string_equal(r.errors[0].source, "bad.md");
    assert_string_equal(r.errors[0].code, "invalid");
    assert_non_null(r.errors[0].message);
    assert_true(strlen(r.errors[0].message) > 0);

    char *js = engine_ingest_report_json(&r);
    assert_non_null(js);
    json_error_t jerr;
    json_t *o = json_loads(js, 0, &jerr);
    if (o == NULL) fail_msg("report JSON does not parse: %s: %s", jerr.text, js);
    json_t *errs = json_object_get(o, "errors");
    assert_true(json_is_array(errs));
    assert_int_equal(json_array_size(errs), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(errs, 0), "source")),
                        "bad.md");
    assert_string_equal(json_string_value(json_object_get(json_array_get(errs, 0), "code")),
                        "invalid");
    json_decref(o);
    free(js);
    engine_ingest_report_free(&r);

    engine_stats s = stats_of(f->e);
    assert_int_equal(s.documents, 4);
    assert_int_equal(s.last_ingest_ok, 0);
    assert_consistent(f->e);
    assert_string_equal(top_source(f->e, Q_GARDEN), "garden.txt");
}

/* ---- retrieval options --------------------------------------------------------------------- */

/* Returns: how many results come from source. */
static size_t count_from(const engine_answer *a, const char *source)
{
    size_t n = 0;
    for (size_t i = 0; i < a->count; i++) n += strcmp(a->results[i].hit.source, source) == 0;
    return n;
}

static void test_filters_and_min_score(void **state)
{
    fixture *f = *state;
    corpus_ingested(f);

    /* A query that matches three documents; without filters they all show up. */
    static const char mixed_q[] =
        "refund request receipt, install the daemon listen port, courier parcels tracking";
    engine_answer a;
    query_run(f->e, mixed_q, 50, -1.0, NULL, NULL, 0, &a);
    size_t n_ref = count_from(&a, "refunds.md"), n_inst = count_from(&a, "guides/install.md");
    size_t n_ship = count_from(&a, "shipping.md");
    engine_answer_free(&a);
    assert_true(n_ref > 0 && n_inst > 0 && n_ship > 0);

    /* source prefix */
    query_run(f->e, mixed_q, 5, -1.0, "guides/", NULL, 0, &a);
    assert_int_equal(a.count, n_inst);
    assert_int_equal(count_from(&a, "guides/install.md"), a.count);
    engine_answer_free(&a);
    query_run(f->e, mixed_q, 5, -1.0, "ship", NULL, 0, &a);
    assert_int_equal(a.count, n_ship < 5 ? n_ship : 5);
    assert_int_equal(count_from(&a, "shipping.md"), a.count);
    engine_answer_free(&a);
    query_run(f->e, mixed_q, 5, -1.0, "nowhere/", NULL, 0, &a);
    assert_int_equal(a.count, 0);
    engine_answer_free(&a);

    /* tags_all: every tag must be present (flow list and block list front matter). */
    const char *billing[] = {"billing"};
    query_run(f->e, mixed_q, 1, -1.0, NULL, billing, 1, &a);
    assert_int_equal(a.count, 1); /* widening finds it even with k 1 */
    assert_string_equal(a.results[0].hit.source, "refunds.md");
    engine_answer_free(&a);
    const char *both[] = {"billing", "policy"};
    query_run(f->e, mixed_q, 50, -1.0, NULL, both, 2, &a);
    assert_int_equal(a.count, n_ref);
    assert_int_equal(count_from(&a, "refunds.md"), a.count);
    engine_answer_free(&a);
    const char *setup_tag[] = {"setup"};
    query_run(f->e, mixed_q, 50, -1.0, NULL, setup_tag, 1, &a);
    assert_int_equal(a.count, n_inst);
    assert_int_equal(count_from(&a, "guides/install.md"), a.count);
    engine_answer_free(&a);
    const char *mixed[] = {"billing", "setup"};
    query_run(f->e, mixed_q, 5, -1.0, NULL, mixed, 2, &a);
    assert_int_equal(a.count, 0);
    engine_answer_free(&a);
    const char *unknown[] = {"Billing"}; /* tags match exactly */
    query_run(f->e, mixed_q, 5, -1.0, NULL, unknown, 1, &a);
    assert_int_equal(a.count, 0);
    engine_answer_free(&a);
    /* prefix and tags together */
    query_run(f->e, mixed_q, 5, -1.0, "guides/", billing, 1, &a);
    assert_int_equal(a.count, 0);
    engine_answer_free(&a);
    query_run(f->e, mixed_q, 5, -1.0, "refunds", billing, 1, &a);
    assert_true(a.count > 0);
    engine_answer_free(&a);

    /* min_score: exactly the results at or above the threshold remain. */
    query_run(f->e, Q_REFUND, 50, -1.0, NULL, NULL, 0, &a);
    assert_true(a.count >= 3);
    double hi = a.results[0].score, lo = a.results[a.count - 1].score;
    assert_true(hi > lo);
    double cut = (a.results[0].score + a.results[1].score) / 2.0;
    size_t above = 0;
    for (size_t i = 0; i < a.count; i++) above += a.results[i].score >= cut;
    engine_answer_free(&a);
    assert_true(above >= 1);
    query_run(f->e, Q_REFUND, 50, cut, NULL, NULL, 0, &a);
    assert_int_equal(a.count, above);
    engine_answer_free(&a);
    query_run(f->e, Q_REFUND, 50, hi + 0.001, NULL, NULL, 0, &a);
    assert_int_equal(a.count, 0);
    engine_answer_free(&a);
    /* min_score with a filter */
    query_run(f->e, Q_REFUND, 50, cut, NULL, setup_tag, 1, &a);
    for (size_t i = 0; i < a.count; i++) assert_true(a.results[i].score >= cut);
    engine_answer_free(&a);
}

/* Keyword candidates are ids and scores until fusion keeps them (issue 16): each kept one is
 * read then, with and without diversity (which compares the texts of all of them), in keyword
 * mode (every result comes from that side) and hybrid; a candidate the store no longer has is
 * never returned as an empty result. */
static void test_keyword_candidates_read_when_kept(void **state)
{
    fixture *f = *state;
    corpus_ingested(f);
    const int modes[] = {RAGD_MODE_KEYWORD, RAGD_MODE_HYBRID};
    const int diversity[] = {RAGD_DIVERSITY_OFF, RAGD_DIVERSITY_ON};
    for (size_t m = 0; m < 2; m++)
        for (size_t d = 0; d < 2; d++) {
            const char *text = "refund receipt order number";
            engine_query q = {.query = text, .query_len = strlen(text), .k = 3,
                              .min_score = -1.0, .mode = modes[m], .diversity = diversity[d]};
            engine_answer a;
            ragd_err err = {0};
            assert_int_equal(engine_retrieve(f->e, &q, &a, &err), RAGD_OK);
            assert_true(a.count >= 1);
            size_t from_keyword = 0;
            for (size_t i = 0; i < a.count; i++) {
                const store_hit *h = &a.results[i].hit;
                assert_true(h->chunk_id > 0);
                assert_non_null(h->text);
                assert_non_null(h->source);
                if (a.results[i].keyword_rank > 0) {
                    from_keyword++;
                    /* BM25 matched it: one of the terms is in its text, heading or title */
                    const char *words[] = {"refund", "receipt", "order", "number"};
                    int has = 0;
                    for (size_t w = 0; w < 4; w++)
                        has |= strcasestr(h->text, words[w]) || strcasestr(h->heading, words[w]) ||
                               strcasestr(h->title, words[w]);
                    assert_true(has);
                }
            }
            assert_true(from_keyword >= 1);
            assert_string_equal(a.results[0].hit.source, "refunds.md");
            engine_answer_free(&a);
        }
}

/* [retrieve] parallel_sides (issue 16): a hybrid query whose keyword side runs in a thread of
 * its own answers exactly as one run side after side: same chunks, scores and ranks, with and
 * without a filter, and the keyword side's timing and candidates are still counted. Settings:
 * false, true, and auto both when it runs the sides in parallel (a core idle, CPUs to spare)
 * and when it does not (one CPU; no idle core). */
static void test_parallel_sides_same_answer(void **state)
{
    fixture *f = *state;
    corpus_ingested(f);
    const char *queries[] = {Q_REFUND, "refund receipt order number", "install setup guide"};
    const char *billing[] = {"billing"};
    /* setting, CPUs, cores x 1000 other processes left free (the sample pinned: never stale),
     * expected parallel */
    const struct {
        int setting, cpus, free_milli, parallel;
    } runs[] = {
        {0, 8, 2000, 0},
        {1, 1, 0, 1},
        {RAGD_CFG_BOOL_AUTO, 8, 2000, 1},
        {RAGD_CFG_BOOL_AUTO, 1, 2000, 0},
        {RAGD_CFG_BOOL_AUTO, 8, 1200, 0},
        {RAGD_CFG_BOOL_AUTO, 8, -1, 1},
    };
    size_t nruns = sizeof runs / sizeof runs[0];
    int cpus = f->e->cpus;
    f->e->cpu.sampled_at = util_now_ms() + 1e12;
    uint64_t counted = metrics_counter_get(RAGD_METRIC_RETRIEVAL_PARALLEL_SIDES), parallel = 0;
    for (size_t i = 0; i < 3; i++)
        for (int filtered = 0; filtered < 2; filtered++) {
            engine_answer a[6];
            for (size_t r = 0; r < nruns; r++) {
                f->cfg.retrieve_parallel_sides = runs[r].setting;
                f->e->cpus = runs[r].cpus;
                atomic_store(&f->e->cpu.free_milli, runs[r].free_milli);
                engine_query q = {.query = queries[i], .query_len = strlen(queries[i]), .k = 5,
                                  .min_score = -1.0, .mode = RAGD_MODE_HYBRID,
                                  .tags_all = filtered ? billing : NULL,
                                  .tag_count = filtered ? 1 : 0};
                ragd_err err = {0};
                assert_int_equal(engine_retrieve(f->e, &q, &a[r], &err), RAGD_OK);
                if (runs[r].setting == RAGD_CFG_BOOL_AUTO && runs[r].parallel)
                    /* handed to a helper thread; auto takes a job back that no helper picked
                     * up by the end of the vector side (quick here), so either */
                    assert_true(a[r].sides_parallel == 0 || a[r].sides_parallel == 1);
                else
                    assert_int_equal(a[r].sides_parallel, runs[r].parallel);
                parallel += (uint64_t)a[r].sides_parallel;
            }
            for (size_t p = 1; p < nruns; p++) {
                assert_int_equal(a[0].count, a[p].count);
                assert_int_equal(a[0].candidates, a[p].candidates);
                for (size_t r = 0; r < a[0].count; r++) {
                    assert_int_equal(a[0].results[r].hit.chunk_id, a[p].results[r].hit.chunk_id);
                    assert_true(a[0].results[r].score == a[p].results[r].score);
                    assert_int_equal(a[0].results[r].keyword_rank, a[p].results[r].keyword_rank);
                    assert_int_equal(a[0].results[r].vector_rank, a[p].results[r].vector_rank);
                }
                if (!filtered) assert_true(a[p].count > 0 && a[p].keyword_ms > 0.0);
            }
            for (size_t r = 0; r < nruns; r++) engine_answer_free(&a[r]);
        }
    f->cfg.retrieve_parallel_sides = 0;
    f->e->cpus = cpus;
    f->e->cpu.sampled_at = 0.0;
    atomic_store(&f->e->cpu.free_milli, -1);
    assert_int_equal(atomic_load(&f->e->retrievals), 0); /* every retrieval counted out */
    /* /metrics ragd_retrieval_parallel_sides_total counts each parallel retrieval once; the
     * helper threads were started (at least one, for the `true` rows) */
    assert_true(parallel >= 6);
    assert_true(f->e->sides.count >= 1);
    assert_int_equal(metrics_counter_get(RAGD_METRIC_RETRIEVAL_PARALLEL_SIDES) - counted, parallel);
}

/* parallel_sides auto's inputs: the decision table, /proc/stat's aggregate line, the cores other
 * processes left free between two samples (this process's own time counts as free), and a live
 * sample of this machine. */
static void test_parallel_sides_auto_inputs(void **state)
{
    (void)state;
    /* setting 0/1 decide alone; auto needs CPUs to spare and a core and a half left free by
     * other processes (or unknown) */
    assert_int_equal(engine_sides_parallel(0, 1, 8, 8000), 0);
    assert_int_equal(engine_sides_parallel(1, 100, 1, 0), 1);
    assert_int_equal(engine_sides_parallel(RAGD_CFG_BOOL_AUTO, 1, 2, 2000), 1);
    assert_int_equal(engine_sides_parallel(RAGD_CFG_BOOL_AUTO, 2, 2, 2000), 0);
    assert_int_equal(engine_sides_parallel(RAGD_CFG_BOOL_AUTO, 1, 2, 1499), 0);
    assert_int_equal(engine_sides_parallel(RAGD_CFG_BOOL_AUTO, 1, 2, 1500), 1);
    assert_int_equal(engine_sides_parallel(RAGD_CFG_BOOL_AUTO, 1, 2, -1), 1);
    assert_int_equal(engine_sides_parallel(RAGD_CFG_BOOL_AUTO, 1, 1, -1), 0);

    unsigned long long idle = 0, total = 0;
    assert_int_equal(engine_cpu_stat_parse("cpu  100 5 50 800 20 3 2 10 7 0\n", &idle, &total),
                     0);
    assert_true(idle == 820 && total == 990); /* guest (7) is inside user already */
    assert_int_equal(engine_cpu_stat_parse("cpu  1 2 3 4\n", &idle, &total), 0);
    assert_true(idle == 4 && total == 10);
    assert_int_equal(engine_cpu_stat_parse("cpu0 100 5 50 800 20 3 2 10\n", &idle, &total), -1);
    assert_int_equal(engine_cpu_stat_parse("intr 1 2 3\n", &idle, &total), -1);
    assert_int_equal(engine_cpu_stat_parse("cpu  1 2\n", &idle, &total), -1);

    /* 2 CPUs, 400 jiffies elapsed, 100 of them idle: a quarter of the machine, half a core;
     * with 200 more of them this process's own: three quarters, a core and a half */
    const engine_cpu_sample s0 = {.idle = 1000, .total = 5000, .own = 70};
    struct {
        engine_cpu_sample s1;
        int free_milli;
    } spans[] = {
        {{.idle = 1100, .total = 5400, .own = 70}, 500},
        {{.idle = 1100, .total = 5400, .own = 270}, 1500},
        {{.idle = 1400, .total = 5400, .own = 70}, 2000},
        {{.idle = 1000, .total = 5400, .own = 70}, 0},
        {{.idle = 1000, .total = 5400, .own = 470}, 2000},
        {{.idle = 1300, .total = 5400, .own = 470}, 2000}, /* sampled apart: capped */
        {{.idle = 1000, .total = 5000, .own = 70}, -1},    /* no time */
        {{.idle = 900, .total = 5400, .own = 70}, -1},     /* backwards */
        {{.idle = 1100, .total = 5400, .own = 60}, -1},    /* backwards */
    };
    for (size_t i = 0; i < sizeof spans / sizeof spans[0]; i++)
        assert_int_equal(engine_cpu_free_between(&s0, &spans[i].s1, 2), spans[i].free_milli);

    /* A live sample: unknown until two samples ENGINE_CPU_SAMPLE_MS apart, then 0..CPUs x 1000
     * (poll, no timing assertion: the second sample comes when it comes). */
    engine_cpu c;
    engine_cpu_init(&c);
    assert_int_equal(engine_cpu_free_milli(&c), -1);
    int v = -1;
    for (int i = 0; i < 200 && v < 0; i++) {
        usleep(20 * 1000);
        v = engine_cpu_free_milli(&c);
    }
    if (access("/proc/stat", R_OK) == 0) {
        assert_true(v >= 0);
        assert_true(v <= c.online * 1000);
    }
    engine_cpu_destroy(&c);
}

/* The keyword sides' helper threads (src/engine_sides.c): a job runs on a helper; a job no
 * helper picked up is taken back unrun with take_back, and waited for without; a job that
 * declines is reported so; destroy stops the helpers. One helper at most, held busy by a job
 * that waits for the test (polls, no timing). */
typedef struct pool_probe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int hold, running, runs, result;
} pool_probe;

static int pool_probe_run(void *arg)
{
    pool_probe *p = arg;
    pthread_mutex_lock(&p->mu);
    p->running = 1;
    p->runs++;
    pthread_cond_broadcast(&p->cv);
    while (p->hold) pthread_cond_wait(&p->cv, &p->mu);
    int result = p->result;
    pthread_mutex_unlock(&p->mu);
    return result;
}

static void test_sides_pool(void **state)
{
    (void)state;
    engine_sides pool;
    engine_sides_init(&pool, 1);
    pool_probe a = {.hold = 1, .result = 1}, b = {.result = 1}, c = {.result = 0};
    pool_probe *probes[] = {&a, &b, &c};
    for (int i = 0; i < 3; i++) {
        pthread_mutex_init(&probes[i]->mu, NULL);
        pthread_cond_init(&probes[i]->cv, NULL);
    }
    engine_side_job ja = {.run = pool_probe_run, .arg = &a};
    engine_side_job jb = {.run = pool_probe_run, .arg = &b};
    engine_side_job jc = {.run = pool_probe_run, .arg = &c};
    assert_int_equal(engine_sides_submit(&pool, &ja), 0);
    pthread_mutex_lock(&a.mu);
    while (!a.running) pthread_cond_wait(&a.cv, &a.mu); /* the one helper is busy with a */
    pthread_mutex_unlock(&a.mu);
    assert_int_equal(pool.count, 1);
    assert_int_equal(engine_sides_submit(&pool, &jb), 0);
    assert_int_equal(engine_sides_submit(&pool, &jc), 0);
    assert_int_equal(pool.count, 1); /* at its max: b and c wait in the queue */
    assert_int_equal(engine_sides_finish(&pool, &jb, 1), RAGD_SIDE_JOB_TAKEN);
    assert_int_equal(b.runs, 0);
    pthread_mutex_lock(&a.mu);
    a.hold = 0;
    pthread_cond_broadcast(&a.cv);
    pthread_mutex_unlock(&a.mu);
    assert_int_equal(engine_sides_finish(&pool, &jc, 0), RAGD_SIDE_JOB_DECLINED);
    assert_int_equal(engine_sides_finish(&pool, &ja, 0), RAGD_SIDE_JOB_DONE);
    assert_int_equal(a.runs, 1);
    assert_int_equal(c.runs, 1);
    assert_int_equal(b.runs, 0);
    /* a finished job's state stays; take_back of a job already run changes nothing */
    assert_int_equal(engine_sides_finish(&pool, &ja, 1), RAGD_SIDE_JOB_DONE);
    engine_sides_destroy(&pool);
    for (int i = 0; i < 3; i++) {
        pthread_mutex_destroy(&probes[i]->mu);
        pthread_cond_destroy(&probes[i]->cv);
    }
}

static void test_rag_disabled(void **state)
{
    fixture *f = *state;
    corpus_ingested(f);

    f->cfg.rag_enabled = 0;
    engine_answer a;
    query_run(f->e, Q_REFUND, 5, -1.0, NULL, NULL, 0, &a);
    assert_int_equal(a.count, 0);
    assert_int_equal(a.rag_enabled, 0);
    char *ctx = engine_context_format(&a);
    assert_non_null(ctx);
    assert_string_equal(ctx, "");
    free(ctx);
    engine_answer_free(&a);

    f->cfg.rag_enabled = 1;
    query_run(f->e, Q_REFUND, 5, -1.0, NULL, NULL, 0, &a);
    assert_true(a.count > 0);
    assert_int_equal(a.rag_enabled, 1);
    engine_answer_free(&a);
}

static void test_report_json(void **state)
{
    fixture *f = *state;
    corpus_write(f);
    engine_up(f, 0);
    engine_ingest_report r;
    ingest_ok(f, f->docs, 0, &r);
    char *js = engine_ingest_report_json(&r);
    assert_non_null(js);
    json_error_t jerr;
    json_t *o = json_loads(js, 0, &jerr);
    if (o == NULL) fail_msg("report JSON does not parse: %s: %s", jerr.text, js);
    assert_true(json_is_object(o));
    assert_string_equal(json_string_value(json_object_get(o, "root")), r.root);
    assert_true(json_is_false(json_object_get(o, "reset")));
    assert_true(json_is_number(json_object_get(o, "duration_ms")));
    assert_true(json_is_array(json_object_get(o, "errors")));
    assert_int_equal(json_array_size(json_object_get(o, "errors")), 0);
    json_t *d = json_object_get(o, "documents"), *c = json_object_get(o, "chunks");
    assert_true(json_is_object(d));
    assert_true(json_is_object(c));
    static const char *const dkeys[] = {"seen", "added", "updated", "unchanged", "removed",
                                        "failed"};
    const int64_t dvals[] = {r.docs_seen, r.docs_added, r.docs_updated, r.docs_unchanged,
                             r.docs_removed, r.docs_failed};
    for (size_t i = 0; i < 6; i++) {
        json_t *v = json_object_get(d, dkeys[i]);
        if (!json_is_integer(v)) fail_msg("documents.%s missing", dkeys[i]);
        assert_int_equal(json_integer_value(v), dvals[i]);
    }
    static const char *const ckeys[] = {"added", "removed", "embedded", "deduplicated"};
    const int64_t cvals[] = {r.chunks_added, r.chunks_removed, r.chunks_embedded,
                             r.chunks_deduplicated};
    for (size_t i = 0; i < 4; i++) {
        json_t *v = json_object_get(c, ckeys[i]);
        if (!json_is_integer(v)) fail_msg("chunks.%s missing", ckeys[i]);
        assert_int_equal(json_integer_value(v), cvals[i]);
    }
    assert_int_equal(json_integer_value(json_object_get(d, "added")), 4);
    json_decref(o);
    free(js);
    engine_ingest_report_free(&r);

    /* An empty report serialises too. */
    engine_ingest_report empty = {0};
    empty.reset = 1;
    js = engine_ingest_report_json(&empty);
    assert_non_null(js);
    o = json_loads(js, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "root")), "");
    assert_true(json_is_true(json_object_get(o, "reset")));
    json_decref(o);
    free(js);
}

static void test_context_format(void **state)
{
    (void)state;
    store_hit h[3] = {{0}};
    h[0].source = "a.md";
    h[0].heading = "Refunds > Exceptions";
    h[0].text = "first text";
    h[0].document_id = 1;
    h[1].source = "b.txt";
    h[1].heading = "";
    h[1].text = "second text";
    h[1].document_id = 2;
    h[2].source = "c.md";
    h[2].heading = NULL;
    h[2].text = "third";
    h[2].document_id = 3;
    const store_hit *hits[3] = {&h[0], &h[1], &h[2]};
    engine_answer a = {.count = 3, .rag_enabled = 1};
    ragd_err err = {0};
    assert_int_equal(retrieve_context_build(hits, 3, 2000, 1, &a.context, &err), RAGD_OK);
    char *s = engine_context_format(&a);
    assert_non_null(s);
    assert_string_equal(s, "[1] a.md > Refunds > Exceptions\nfirst text\n\n"
                           "[2] b.txt\nsecond text\n\n"
                           "[3] c.md\nthird");
    free(s);
    retrieve_context_free(&a.context);
    assert_int_equal(retrieve_context_build(hits, 1, 2000, 1, &a.context, &err), RAGD_OK);
    s = engine_context_format(&a);
    assert_string_equal(s, "[1] a.md > Refunds > Exceptions\nfirst text");
    free(s);
    retrieve_context_free(&a.context);
    assert_int_equal(retrieve_context_build(hits, 0, 2000, 1, &a.context, &err), RAGD_OK);
    s = engine_context_format(&a);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
    retrieve_context_free(&a.context);
}

static void test_context_from_retrieval(void **state)
{
    fixture *f = *state;
    corpus_ingested(f);
    engine_answer a;
    query_run(f->e, Q_REFUND, 3, -1.0, NULL, NULL, 0, &a);
    assert_int_equal(a.count, 3);
    char *s = engine_context_format(&a);
    assert_non_null(s);
    assert_int_equal(strncmp(s, "[1] refunds.md", 14), 0);
    /* one block per source, numbered in order; every result is in one of them */
    assert_true(a.context.source_count >= 1 && a.context.source_count <= 3);
    for (size_t i = 0; i < a.context.source_count; i++) {
        char tag[32];
        snprintf(tag, sizeof tag, "%s[%d] ", i ? "\n\n" : "", (int)i + 1);
        assert_non_null(strstr(s, tag));
    }
    char next[32];
    snprintf(next, sizeof next, "[%d] ", (int)a.context.source_count + 1);
    assert_null(strstr(s, next));
    for (size_t i = 0; i < a.count; i++) assert_true(a.context.result_n[i] >= 1);
    free(s);
    engine_answer_free(&a);
}

/* Pushed documents beside file documents: upsert outcomes, nothing re-embedded for unchanged
 * content, a directory re-ingest leaves them alone, delete and not-found; and an OpenAI-style
 * filter on their metadata through engine_retrieve. */
static void test_pushed_documents_and_filter(void **state)
{
    fixture *f = *state;
    corpus_ingested(f);
    ragd_err err = {0};
    engine_push_outcome out;
    int64_t chunks = 0;
    engine_push_doc d = {.id = "faq-1", .text = "# Gift wrap\n\nPresents are wrapped in lilac "
                         "paper for free.", .markdown = 1, .source = "https://x.example/1",
                         .tags_json = "[\"faq\"]", .metadata_json = "{\"lang\":\"en\"}"};
    d.text_len = strlen(d.text);
    assert_int_equal(engine_doc_push(f->e, &d, &out, &chunks, &err), RAGD_OK);
    assert_int_equal(out, RAGD_PUSH_ADDED);
    assert_int_equal(chunks, 1);
    engine_stats s1 = stats_of(f->e);
    assert_int_equal(engine_doc_push(f->e, &d, &out, &chunks, &err), RAGD_OK);
    assert_int_equal(out, RAGD_PUSH_UNCHANGED);
    assert_int_equal(chunks, 1);
    engine_stats s1b = stats_of(f->e);
    stats_equal(&s1, &s1b);
    d.metadata_json = "{\"lang\":\"fr\"}"; /* metadata alone changes the document */
    assert_int_equal(engine_doc_push(f->e, &d, &out, &chunks, &err), RAGD_OK);
    assert_int_equal(out, RAGD_PUSH_UPDATED);
    engine_stats s2 = stats_of(f->e);
    assert_int_equal(s2.embeddings, s1.embeddings); /* same text: the embedding is re-used */
    engine_ingest_report r;
    ingest_ok(f, f->docs, 0, &r);
    assert_int_equal(r.docs_removed, 0);
    engine_ingest_report_free(&r);
    assert_int_equal(stats_of(f->e).documents, s2.documents);
    assert_consistent(f->e);

    json_t *fj = json_loads("{\"type\":\"eq\",\"key\":\"lang\",\"value\":\"fr\"}", 0, NULL);
    retrieve_filter *flt = NULL;
    assert_int_equal(retrieve_filter_parse(fj, "filters", &flt, &err), RAGD_OK);
    json_decref(fj);
    engine_query q = {.query = "lilac paper presents", .k = 5, .min_score = 0.0, .filter = flt};
    q.query_len = strlen(q.query);
    engine_answer a;
    assert_int_equal(engine_retrieve(f->e, &q, &a, &err), RAGD_OK);
    assert_int_equal(a.count, 1);
    assert_string_equal(a.results[0].hit.source, "https://x.example/1");
    assert_string_equal(a.results[0].hit.title, "Gift wrap");
    engine_answer_free(&a);
    retrieve_filter_free(flt);

    assert_int_equal(engine_doc_delete(f->e, "faq-1", &chunks, &err), RAGD_OK);
    assert_int_equal(chunks, 1);
    ragd_err_clear(&err);
    assert_int_equal(engine_doc_delete(f->e, "faq-1", &chunks, &err), RAGD_ERR_NOT_FOUND);
    ragd_err_clear(&err);
    d.id = "";
    assert_int_equal(engine_doc_push(f->e, &d, &out, &chunks, &err), RAGD_ERR_INVALID);
    assert_int_equal(stats_of(f->e).documents, s1.documents - 1);
    assert_consistent(f->e);
}

/* The write-fault state: noted, reported with its reason, a probe due only after a period,
 * cleared; the space probe writes (and removes) its file or says why it cannot. */
static void test_write_fault_state(void **state)
{
    (void)state;
    engine_fault f;
    engine_fault_init(&f);
    char reason[384];
    int64_t since = -1;
    assert_int_equal(engine_fault_get(&f, reason, sizeof reason, &since), 0);
    assert_string_equal(reason, "");
    assert_int_equal(since, 0);
    assert_int_equal(engine_fault_probe_claim(&f), 0); /* nothing to recover from */
    engine_fault_note(&f, "saving the vector index", "No space left on device");
    assert_int_equal(engine_fault_get(&f, reason, sizeof reason, &since), 1);
    assert_string_equal(reason, "saving the vector index: No space left on device");
    assert_true(since > 0);
    /* a probe right after the failure is not due yet (one period) */
    assert_int_equal(engine_fault_probe_claim(&f), 0);
    engine_fault_clear(&f);
    assert_int_equal(engine_fault_get(&f, NULL, 0, NULL), 0);
    engine_fault_destroy(&f);

    char dir[4096];
    assert_int_equal(test_tmpdir_make(dir, sizeof dir, "fault"), 0);
    ragd_err err = {0};
    assert_int_equal(engine_fault_space_check(dir, 300 * 1024, &err), RAGD_OK);
    DIR *dh = opendir(dir);
    assert_non_null(dh);
    struct dirent *de;
    int entries = 0;
    while ((de = readdir(dh)) != NULL)
        entries += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(dh);
    assert_int_equal(entries, 0); /* the probe file is gone */
    char *missing = util_path_join(dir, "no/such/dir");
    assert_int_equal(engine_fault_space_check(missing, 1024, &err), RAGD_ERR_IO);
    assert_non_null(strstr(err.msg, "cannot create a file"));
    free(missing);
    assert_int_equal(test_tree_remove(dir), 0);
}

/* engine_retrieve_quick: the local embedder over an in-process index is quick (the event loop may
 * run such retrievals); a Redis behind the query cache or a reranker (network calls a retrieval
 * may wait on) are not. */
static void test_retrieve_quick(void **state)
{
    fixture *f = *state;
    ragd_err err = {0};
    corpus_ingested(f);
    assert_int_equal(engine_retrieve_quick(f->e), 1);
    engine_down(f);
    /* nothing listens there: the cache starts without Redis and keeps trying, as the daemon does */
    assert_int_equal(cfg_key_set(&f->cfg, "cache", "redis_url", "redis://127.0.0.1:1", "test",
                                 &err), RAGD_OK);
    engine_up(f, 0);
    assert_int_equal(engine_retrieve_quick(f->e), 0);
    engine_down(f);
    assert_int_equal(cfg_key_set(&f->cfg, "cache", "redis_url", "", "test", &err), RAGD_OK);
    assert_int_equal(cfg_key_set(&f->cfg, "rerank", "provider", "tei", "test", &err), RAGD_OK);
    assert_int_equal(cfg_key_set(&f->cfg, "rerank", "base_url", "http://127.0.0.1:1", "test",
                                 &err), RAGD_OK);
    engine_up(f, 0);
    assert_int_equal(engine_retrieve_quick(f->e), 0);
}

int main(void)
{
    log_level_set(RAGD_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ingest_report_and_retrieve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reingest_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_single_file_ingest_keeps_siblings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_single_file_keeps_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_non_utf8_file_name_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_dir_keeps_documents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_modify_updates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_removes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_content_deduplicated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_loads_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_index_rebuilt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_index_rebuilt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_index_rebuilt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_index_same_count_rebuilt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_and_readonly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dims_change_needs_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retrieve_dims_around_stack_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resetting_same_model_is_plain_open, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_missing_path_leaves_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_stops_ingest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_then_reset_keeps_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_during_ingest_keeps_committed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_batched_ingest_reports_committed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batched_ingest_without_waiters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8_file_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filters_and_min_score, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyword_candidates_read_when_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parallel_sides_same_answer, setup, teardown),
        cmocka_unit_test(test_parallel_sides_auto_inputs),
        cmocka_unit_test(test_sides_pool),
        cmocka_unit_test_setup_teardown(test_rag_disabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_json, setup, teardown),
        cmocka_unit_test(test_context_format),
        cmocka_unit_test(test_write_fault_state),
        cmocka_unit_test_setup_teardown(test_context_from_retrieval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pushed_documents_and_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retrieve_quick, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
