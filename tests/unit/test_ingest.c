/* SPDX-License-Identifier: MIT */
/*
 * test_ingest.c - the extractors (front matter forms, BOM, NUL, invalid UTF-8, title fallbacks)
 * and the crawler (nested dirs, hidden dirs, unsupported files, symlinks inside and outside the
 * root, single-file roots, missing roots) on temp trees under $TMPDIR; reads that refuse a file
 * swapped after the crawl (symlink out of the root, FIFO, another file, a directory link); the HTML and rst
 * extractors on table cases (tests/data/extract/<ext>_<case>/{input,expected}); include/exclude
 * globs; invalid UTF-8 repair; unknown extensions as text; page-wise splitting.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ragd/ingest.h"
#include "ragd/util.h"

#include "test_support.h"

static ingest_doc extract_ok(const char *path, const char *data)
{
    ingest_doc d = {0};
    ragd_err err = {0};
    assert_int_equal(ingest_extract_run(path, data, strlen(data), &d, &err), RAGD_OK);
    return d;
}

static void test_supported(void **state)
{
    (void)state;
    assert_true(ingest_extract_supported("a/b/Refunds.MD"));
    assert_true(ingest_extract_supported("x.markdown"));
    assert_true(ingest_extract_supported("notes.txt"));
    assert_false(ingest_extract_supported("image.png"));
    assert_false(ingest_extract_supported("README"));
    assert_false(ingest_extract_supported(".md"));
    assert_false(ingest_extract_supported("dir.md/file"));
}

static void test_front_matter_flow_tags(void **state)
{
    (void)state;
    ingest_doc d = extract_ok("docs/refunds.md", "---\ntitle: \"Refund policy\"\n"
                                                 "tags: [billing, 'support']\n"
                                                 "owner: finance # team\nversion: 3\n---\n"
                                                 "# Heading\nBody\n");
    assert_string_equal(d.title, "Refund policy");
    assert_string_equal(d.tags_json, "[\"billing\",\"support\"]");
    assert_string_equal(d.metadata_json, "{\"owner\":\"finance\",\"version\":\"3\"}");
    assert_string_equal(d.text, "# Heading\nBody\n");
    assert_int_equal(d.len, strlen("# Heading\nBody\n"));
    assert_int_equal(d.markdown, 1);
    ingest_doc_free(&d);
    assert_null(d.text);
    ingest_doc_free(NULL);
}

static void test_front_matter_block_tags(void **state)
{
    (void)state;
    ingest_doc d = extract_ok("a.md", "---\r\ntags:\r\n  - one\r\n  - \"two words\"\r\n"
                                      "lang: en\r\n...\r\nText\r\n");
    assert_string_equal(d.tags_json, "[\"one\",\"two words\"]");
    assert_string_equal(d.metadata_json, "{\"lang\":\"en\"}");
    assert_string_equal(d.title, "a"); /* no title key, no H1 */
    assert_string_equal(d.text, "Text\r\n");
    ingest_doc_free(&d);
}

static void test_no_front_matter(void **state)
{
    (void)state;
    /* an unclosed --- block is text, not front matter */
    ingest_doc d = extract_ok("b.md", "---\ntitle: x\nno close\n");
    assert_string_equal(d.text, "---\ntitle: x\nno close\n");
    assert_string_equal(d.tags_json, "[]");
    assert_string_equal(d.metadata_json, "{}");
    assert_string_equal(d.title, "b");
    ingest_doc_free(&d);
}

static void test_title_fallbacks(void **state)
{
    (void)state;
    ingest_doc d =
        extract_ok("x/guide.md", "intro\n\n```\n# not this\n```\n## Sub\n# Real Title #\n");
    assert_string_equal(d.title, "Real Title");
    ingest_doc_free(&d);
    d = extract_ok("x/guide.md", "Setext Title\n============\n\ntext\n");
    assert_string_equal(d.title, "Setext Title");
    ingest_doc_free(&d);
    d = extract_ok("x/my.notes.md", "no heading here\n");
    assert_string_equal(d.title, "my.notes");
    ingest_doc_free(&d);
    /* text files: the file name, even when a line looks like a heading */
    d = extract_ok("dir/plain.txt", "# Not a title\n");
    assert_string_equal(d.title, "plain");
    assert_int_equal(d.markdown, 0);
    assert_string_equal(d.text, "# Not a title\n");
    ingest_doc_free(&d);
}

static void test_bom_stripped(void **state)
{
    (void)state;
    ingest_doc d = extract_ok("bom.md", "\xEF\xBB\xBF# Café\n");
    assert_string_equal(d.text, "# Café\n");
    assert_string_equal(d.title, "Café");
    ingest_doc_free(&d);
}

static void test_rejects_binary_and_bad_utf8(void **state)
{
    (void)state;
    ingest_doc d = {.text = (char *)"untouched", .len = 9};
    ragd_err err = {0};
    assert_int_equal(ingest_extract_run("a.md", "ab\0cd", 5, &d, &err), RAGD_ERR_INVALID);
    assert_non_null(strstr(err.msg, "binary file"));
    assert_string_equal(d.text, "untouched");
    ragd_err_clear(&err);
    assert_int_equal(ingest_extract_run("a.txt", "abc\xC3(x", 6, &d, &err), RAGD_ERR_INVALID);
    assert_non_null(strstr(err.msg, "invalid UTF-8 at byte 3"));
    ragd_err_clear(&err);
    /* an overlong encoding and a surrogate are invalid too */
    assert_int_equal(ingest_extract_run("a.txt", "\xC0\xAF", 2, &d, &err), RAGD_ERR_INVALID);
    ragd_err_clear(&err);
    assert_int_equal(ingest_extract_run("a.txt", "ok\xED\xA0\x80", 5, &d, &err), RAGD_ERR_INVALID);
    assert_non_null(strstr(err.msg, "byte 2"));
    ragd_err_clear(&err);
    assert_int_equal(ingest_extract_run("a.png", "x", 1, &d, &err), RAGD_ERR_UNSUPPORTED);
    assert_string_equal(d.text, "untouched");
}

/* ---- crawler ---- */

static void write_file(const char *dir, const char *rel, const char *content)
{
    assert_int_equal(test_file_write(dir, rel, content), 0);
}

static void make_dir(const char *dir, const char *rel)
{
    char *p = util_path_join(dir, rel);
    assert_int_equal(mkdir(p, 0755), 0);
    free(p);
}

static void test_crawl_tree(void **state)
{
    (void)state;
    char base[4096];
    assert_int_equal(test_tmpdir_make(base, sizeof base, "crawl"), 0);
    char *root = util_path_join(base, "docs");
    char *outside = util_path_join(base, "outside");
    assert_int_equal(mkdir(root, 0755), 0);
    assert_int_equal(mkdir(outside, 0755), 0);
    write_file(outside, "secret.md", "outside the root\n");
    make_dir(root, "business");
    make_dir(root, "business/deep");
    make_dir(root, ".git");
    write_file(root, "b.md", "b\n");
    write_file(root, "a.txt", "a\n");
    write_file(root, "business/refunds.md", "refunds\n");
    write_file(root, "business/deep/x.markdown", "x\n");
    write_file(root, "business/image.png", "png");
    write_file(root, ".hidden.md", "hidden\n");
    write_file(root, ".git/config.md", "git\n");
    char *link_in = util_path_join(root, "alias.md");
    char *target_in = util_path_join(root, "b.md");
    char *link_out = util_path_join(root, "escape.md");
    char *target_out = util_path_join(outside, "secret.md");
    char *link_loop = util_path_join(root, "business/loop");
    assert_int_equal(symlink(target_in, link_in), 0);
    assert_int_equal(symlink(target_out, link_out), 0);
    assert_int_equal(symlink(root, link_loop), 0); /* a cycle back to the root */

    ingest_file_list l = {0};
    char *root_abs = NULL;
    ragd_err err = {0};
    assert_int_equal(ingest_crawl_run(root, &l, &root_abs, &err), RAGD_OK);
    char *real_root = realpath(root, NULL);
    assert_string_equal(root_abs, real_root);
    /* alias.md -> b.md is one file reached under two names: it is listed once, under the first
     * name in byte order, so a re-ingest never flips its source between the two. */
    const char *want[] = {"a.txt", "alias.md", "business/deep/x.markdown",
                          "business/refunds.md"};
    assert_int_equal(l.count, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < l.count; i++) {
        assert_string_equal(l.items[i].relative, want[i]);
        assert_true(l.items[i].path[0] == '/');
        assert_true(strncmp(l.items[i].path, real_root, strlen(real_root)) == 0);
    }
    assert_int_equal(l.items[0].size, 2);
    assert_true(l.items[0].mtime > 0);
    /* the symlink leaving the root is not followed but reported */
    assert_int_equal(l.skipped_count, 1);
    assert_string_equal(l.skipped[0].relative, "escape.md");
    assert_non_null(strstr(l.skipped[0].path, "outside"));
    /* the symlink inside is named by its own path in the root; its bytes are read from the
     * target's symlink-free path below the root, the file the crawl saw (same inode) */
    char *real_alias = util_path_join(real_root, "alias.md");
    assert_string_equal(l.items[1].path, real_alias);
    free(real_alias);
    assert_string_equal(l.items[1].resolved, "b.md");
    assert_string_equal(l.items[0].resolved, "a.txt");
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(ingest_file_read(&l.items[1], 1 << 20, &data, &len, &err), RAGD_OK);
    assert_string_equal(data, "b\n");
    free(data);
    ingest_file_list_free(&l);
    free(root_abs);

    /* a single file: relative is the file name, root_abs its directory */
    char *single = util_path_join(root, "business/refunds.md");
    char *biz = util_path_join(real_root, "business");
    assert_int_equal(ingest_crawl_run(single, &l, &root_abs, &err), RAGD_OK);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.items[0].relative, "refunds.md");
    assert_string_equal(root_abs, biz);
    assert_int_equal(l.items[0].size, 8);
    ingest_file_list_free(&l);
    free(root_abs);
    ingest_file_list_free(NULL);

    /* errors: missing root, unsupported single file; outputs untouched */
    char *missing = util_path_join(base, "nope");
    char *png = util_path_join(root, "business/image.png");
    root_abs = (char *)"untouched";
    ragd_err_clear(&err);
    assert_int_equal(ingest_crawl_run(missing, &l, &root_abs, &err), RAGD_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "path not found"));
    ragd_err_clear(&err);
    assert_int_equal(ingest_crawl_run(png, &l, &root_abs, &err), RAGD_ERR_INVALID);
    assert_string_equal(root_abs, "untouched");
    assert_int_equal(l.count, 0);

    assert_int_equal(test_tree_remove(base), 0);
    free(root);
    free(outside);
    free(link_in);
    free(target_in);
    free(link_out);
    free(target_out);
    free(link_loop);
    free(real_root);
    free(single);
    free(biz);
    free(missing);
    free(png);
}

/* Swaps path (a file) for what make() creates there, then expects ingest_file_read of f to fail
 * with rc and a message containing want, without blocking. */
static void swap_and_refuse(const ingest_file *f, const char *path, int (*make)(const char *),
                            ragd_rc rc, const char *want)
{
    assert_int_equal(unlink(path), 0);
    assert_int_equal(make(path), 0);
    char *data = NULL;
    size_t len = 0;
    ragd_err err = {0};
    assert_int_equal(ingest_file_read(f, 1 << 20, &data, &len, &err), rc);
    assert_null(data);
    assert_non_null(strstr(err.msg, want));
}

static const char *swap_target; /* what make_link points at */
static int make_link(const char *path) { return symlink(swap_target, path); }
static int make_fifo(const char *path) { return mkfifo(path, 0644); }
static const char *swap_other; /* a regular file make_other_file renames into place */
static int make_other_file(const char *path) { return rename(swap_other, path); }

/* The race of issue 13: a file (or a directory on its path) listed by the crawl is swapped for a
 * symlink leading outside the root, a FIFO, or another file before it is read. The read refuses
 * each one, never blocks, and never returns the outside file's bytes. */
static void test_crawl_read_refuses_swaps(void **state)
{
    (void)state;
    char base[4096];
    assert_int_equal(test_tmpdir_make(base, sizeof base, "swap"), 0);
    char *root = util_path_join(base, "docs");
    char *outside = util_path_join(base, "outside");
    assert_int_equal(mkdir(root, 0755), 0);
    assert_int_equal(mkdir(outside, 0755), 0);
    write_file(outside, "secret.md", "the vault code\n");
    make_dir(outside, "sub");
    write_file(outside, "sub/page.md", "outside page\n");
    write_file(root, "page.md", "inside\n");
    make_dir(root, "sub");
    write_file(root, "sub/page.md", "inside sub\n");

    ingest_file_list l = {0};
    char *root_abs = NULL;
    ragd_err err = {0};
    assert_int_equal(ingest_crawl_run(root, &l, &root_abs, &err), RAGD_OK);
    assert_int_equal(l.count, 2);
    const ingest_file *page = &l.items[0], *subpage = &l.items[1];
    assert_string_equal(page->relative, "page.md");
    assert_string_equal(subpage->relative, "sub/page.md");
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(ingest_file_read(page, 1 << 20, &data, &len, &err), RAGD_OK);
    assert_string_equal(data, "inside\n");
    free(data);
    data = NULL;

    char *page_path = util_path_join(root, "page.md");
    char *secret = util_path_join(outside, "secret.md");
    swap_target = secret;
    /* another regular file, made while the first still exists so its inode differs */
    write_file(root, "other.md", "another file\n");
    char *other = util_path_join(root, "other.md");
    swap_other = other;
    swap_and_refuse(page, page_path, make_other_file, RAGD_ERR_IO, "replaced");
    free(other);
    swap_and_refuse(page, page_path, make_fifo, RAGD_ERR_IO, "no longer a regular file");
    swap_and_refuse(page, page_path, make_link, RAGD_ERR_IO, "symlink");
    assert_int_equal(unlink(page_path), 0);
    assert_int_equal(ingest_file_read(page, 1 << 20, &data, &len, &err), RAGD_ERR_NOT_FOUND);

    /* a directory on the path swapped for a link to an outside directory with the same layout */
    char *sub = util_path_join(root, "sub");
    char *sub_page = util_path_join(root, "sub/page.md");
    char *outside_sub = util_path_join(outside, "sub");
    assert_int_equal(unlink(sub_page), 0);
    assert_int_equal(rmdir(sub), 0);
    assert_int_equal(symlink(outside_sub, sub), 0);
    ragd_err_clear(&err);
    assert_int_equal(ingest_file_read(subpage, 1 << 20, &data, &len, &err), RAGD_ERR_IO);
    assert_null(data);
    assert_non_null(strstr(err.msg, "symlink"));
    ingest_file_list_free(&l);
    free(root_abs);

    /* a root that was checked as canonical but now resolves elsewhere is refused */
    char *via_link = util_path_join(root, "sub"); /* now a link to outside/sub */
    ingest_crawl_opts canon = {.root_canonical = 1};
    ragd_err_clear(&err);
    assert_int_equal(ingest_crawl_scan(via_link, &canon, &l, &root_abs, &err), RAGD_ERR_FORBIDDEN);
    assert_non_null(strstr(err.msg, "changed while it was being checked"));
    free(via_link);

    /* a crawl of the tree as it is now lists no FIFO and follows no link out of the root */
    assert_int_equal(mkfifo(page_path, 0644), 0);
    assert_int_equal(ingest_crawl_run(root, &l, &root_abs, &err), RAGD_OK);
    assert_int_equal(l.count, 0);
    assert_int_equal(l.skipped_count, 1);
    assert_string_equal(l.skipped[0].relative, "sub");
    ingest_file_list_free(&l);
    free(root_abs);

    assert_int_equal(test_tree_remove(base), 0);
    free(root);
    free(outside);
    free(page_path);
    free(secret);
    free(sub);
    free(sub_page);
    free(outside_sub);
}

/* A tree deeper than the crawl walks is cut (reported, counted unreadable so nothing under it
 * looks deleted) instead of recursing without bound. */
static void test_crawl_depth_bounded(void **state)
{
    (void)state;
    char base[4096];
    assert_int_equal(test_tmpdir_make(base, sizeof base, "deep"), 0);
    char rel[4096] = "";
    write_file(base, "top.md", "top\n");
    for (int i = 0; i < 70; i++) {
        strcat(rel, i ? "/d" : "d");
        make_dir(base, rel);
    }
    char deep[4200];
    snprintf(deep, sizeof deep, "%s/deep.md", rel);
    write_file(base, deep, "deep\n");
    ingest_file_list l = {0};
    char *root_abs = NULL;
    ragd_err err = {0};
    assert_int_equal(ingest_crawl_run(base, &l, &root_abs, &err), RAGD_OK);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.items[0].relative, "top.md");
    assert_int_equal(l.skipped_count, 1);
    assert_non_null(strstr(l.skipped[0].path, "nested too deep"));
    assert_true(l.unreadable > 0);
    ingest_file_list_free(&l);
    free(root_abs);
    assert_int_equal(test_tree_remove(base), 0);
}

/* ---- HTML and rst table cases ------------------------------------------------------------- */

static const char *data_dir(void)
{
    const char *env = getenv("RAGD_TEST_DATA");
    return env && env[0] ? env : "tests/data";
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_extract_table_cases(void **state)
{
    (void)state;
    char *root = util_path_join(data_dir(), "extract");
    DIR *dir = opendir(root);
    if (dir == NULL) fail_msg("cannot open %s (set RAGD_TEST_DATA)", root);
    char *names[128];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL && n < 128)
        if (de->d_name[0] != '.') names[n++] = strdup(de->d_name);
    closedir(dir);
    qsort(names, n, sizeof names[0], name_cmp);
    assert_true(n >= 10);
    for (size_t k = 0; k < n; k++) {
        char *cdir = util_path_join(root, names[k]);
        char *ipath = util_path_join(cdir, "input"), *epath = util_path_join(cdir, "expected");
        char *input = NULL, *expected = NULL;
        size_t ilen = 0, elen = 0;
        ragd_err err = {0};
        if (util_file_read(ipath, 1 << 20, &input, &ilen, &err) != RAGD_OK ||
            util_file_read(epath, 1 << 20, &expected, &elen, &err) != RAGD_OK)
            fail_msg("case %s: missing input/expected", names[k]);
        /* the case name's prefix is the file extension: html_entities -> input.html */
        char fname[64];
        snprintf(fname, sizeof fname, "input.%.*s", (int)strcspn(names[k], "_"), names[k]);
        ingest_doc d = {0};
        if (ingest_extract_run(fname, input, ilen, &d, &err) != RAGD_OK)
            fail_msg("case %s: %s", names[k], err.msg);
        util_buf got = {0};
        util_buf_printf(&got, "title: %s\nmarkdown: %d\n---\n%s", d.title, d.markdown, d.text);
        if (strcmp(got.data, expected) != 0)
            fail_msg("case %s:\n--- expected\n%s\n--- got\n%s", names[k], expected, got.data);
        util_buf_free(&got);
        ingest_doc_free(&d);
        free(input);
        free(expected);
        free(ipath);
        free(epath);
        free(cdir);
        free(names[k]);
    }
    free(root);
}

static void test_globs(void **state)
{
    (void)state;
    const char *inc[] = {"*.md", "guides/*"};
    const char *exc[] = {"drafts", "*.tmp.md", "archive/old/*"};
    ingest_globs g = {inc, 2, exc, 3};
    static const struct {
        const char *path;
        int selected;
    } cases[] = {
        {"a.md", 1},                    /* include by name */
        {"deep/dir/b.md", 1},           /* a name glob matches at any depth */
        {"c.pdf", 0},                   /* no include matches */
        {"guides/x.pdf", 1},            /* a path glob */
        {"guides/sub/y.pdf", 1},        /* '*' crosses '/' in a path glob */
        {"other/guides/z.pdf", 0},      /* a path glob is anchored */
        {"drafts/a.md", 0},             /* exclude by directory name */
        {"x/drafts/y/a.md", 0},         /* ... at any depth */
        {"drafts.md", 1},               /* the name "drafts" is not "drafts.md" */
        {"notes.tmp.md", 0},            /* exclude by name */
        {"archive/old/a.md", 0},        /* exclude by path */
        {"archive/new/a.md", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (ingest_glob_selected(&g, cases[i].path) != cases[i].selected)
            fail_msg("%s: selected %d, want %d", cases[i].path, !cases[i].selected,
                     cases[i].selected);
    assert_int_equal(ingest_glob_selected(NULL, "any/thing"), 1);
    ingest_globs none = {NULL, 0, NULL, 0};
    assert_int_equal(ingest_glob_selected(&none, "x.bin"), 1);
    ingest_globs only_exc = {NULL, 0, exc, 3};
    assert_int_equal(ingest_glob_selected(&only_exc, "x.bin"), 1);
    assert_int_equal(ingest_glob_selected(&only_exc, "drafts/x.bin"), 0);
    assert_int_equal(ingest_glob_valid("*.md"), 1);
    assert_int_equal(ingest_glob_valid(""), 0);
    assert_int_equal(ingest_glob_valid(NULL), 0);
    char longer[300];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    assert_int_equal(ingest_glob_valid(longer), 0);
}

static void test_utf8_repair_and_unknown_extensions(void **state)
{
    (void)state;
    ingest_extract_opts repair = {.unknown_as_text = 0, .repair_utf8 = 1};
    ingest_doc d = {0};
    ragd_err err = {0};
    /* two broken sequences: a lone continuation byte and a truncated 3-byte sequence */
    assert_int_equal(ingest_extract_file("a.txt", "ok \x80 and \xE2\x82!", 12, &repair, &d, &err),
                     RAGD_OK);
    assert_string_equal(d.text, "ok \xEF\xBF\xBD and \xEF\xBF\xBD!");
    assert_non_null(d.warning);
    assert_non_null(strstr(d.warning, "2 sequences"));
    ingest_doc_free(&d);
    /* skip mode (the default) refuses */
    assert_int_equal(ingest_extract_file("a.txt", "ok \x80", 4, NULL, &d, &err), RAGD_ERR_INVALID);
    /* NUL bytes are binary whatever the options */
    ragd_err_clear(&err);
    assert_int_equal(ingest_extract_file("a.txt", "a\0b", 3, &repair, &d, &err), RAGD_ERR_INVALID);
    assert_non_null(strstr(err.msg, "binary"));
    /* unknown extensions: refused, unless configured as text */
    ingest_extract_opts text = {.unknown_as_text = 1, .repair_utf8 = 0};
    ragd_err_clear(&err);
    assert_int_equal(ingest_extract_file("notes.org", "* heading", 9, NULL, &d, &err),
                     RAGD_ERR_UNSUPPORTED);
    assert_int_equal(ingest_extract_file("notes.org", "* heading", 9, &text, &d, &err), RAGD_OK);
    assert_string_equal(d.title, "notes");
    assert_int_equal(d.markdown, 0);
    ingest_doc_free(&d);
    assert_int_equal(ingest_extract_accepted("x.org", NULL), 0);
    assert_int_equal(ingest_extract_accepted("x.org", &text), 1);
    assert_int_equal(ingest_extract_accepted("x.PDF", NULL), 1);
    assert_int_equal(ingest_extract_accepted("x.htm", NULL), 1);
    assert_int_equal(ingest_extract_accepted("x.rst", NULL), 1);
    /* a PDF extension with other content is a per-file error, not a crash */
    ragd_err_clear(&err);
    assert_int_equal(ingest_extract_file("x.pdf", "hello", 5, NULL, &d, &err), RAGD_ERR_INVALID);
    assert_non_null(strstr(err.msg, "not a PDF"));
}

static void test_doc_split_pages(void **state)
{
    (void)state;
    const char *text = "Page one text.\n\nPage two has\n\ntwo paragraphs.\n\nPage three.";
    size_t starts[3] = {0, 16, 47};
    ingest_doc d = {.text = (char *)text, .len = strlen(text), .page_starts = starts,
                    .page_count = 3};
    ingest_chunk_opts o = {.target_tokens = 200, .max_tokens = 300, .overlap = 0.0,
                           .markdown = 0};
    ingest_chunk_list l = {0};
    ragd_err err = {0};
    assert_int_equal(ingest_doc_split(&d, &o, &l, &err), RAGD_OK);
    /* small pages would fit one chunk, but a chunk never spans two pages */
    assert_int_equal(l.count, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(l.items[i].page, (int)i + 1);
        assert_true(l.items[i].start >= starts[i]);
        assert_true(i == 2 || l.items[i].end <= starts[i + 1]);
    }
    assert_memory_equal(text + l.items[2].start, "Page three.", 11);
    ingest_chunk_list_free(&l);
    d.page_count = 0; /* not paged: one chunk, page 0 */
    assert_int_equal(ingest_doc_split(&d, &o, &l, &err), RAGD_OK);
    assert_int_equal(l.count, 1);
    assert_int_equal(l.items[0].page, 0);
    ingest_chunk_list_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_supported),
        cmocka_unit_test(test_front_matter_flow_tags),
        cmocka_unit_test(test_front_matter_block_tags),
        cmocka_unit_test(test_no_front_matter),
        cmocka_unit_test(test_title_fallbacks),
        cmocka_unit_test(test_bom_stripped),
        cmocka_unit_test(test_rejects_binary_and_bad_utf8),
        cmocka_unit_test(test_crawl_tree),
        cmocka_unit_test(test_crawl_read_refuses_swaps),
        cmocka_unit_test(test_crawl_depth_bounded),
        cmocka_unit_test(test_extract_table_cases),
        cmocka_unit_test(test_globs),
        cmocka_unit_test(test_utf8_repair_and_unknown_extensions),
        cmocka_unit_test(test_doc_split_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
