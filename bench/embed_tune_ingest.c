/* SPDX-License-Identifier: MIT */
/*
 * embed_tune_ingest.c - a minimal stand-in for src/ingest_crawl.c and src/ingest_extract.c, used
 * by bench/Makefile only while those files do not exist yet: sorted recursive crawl of .md,
 * .markdown and .txt files (hidden entries skipped), YAML front matter removed, title from the
 * front matter, the first "# " heading, or the file name.
 */
#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "ragd/ingest.h"
#include "ragd/util.h"

static int supported_markdown(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (dot == NULL) return -1;
    if (strcasecmp(dot, ".md") == 0 || strcasecmp(dot, ".markdown") == 0) return 1;
    if (strcasecmp(dot, ".txt") == 0) return 0;
    return -1;
}

int ingest_extract_supported(const char *path)
{
    return supported_markdown(path) >= 0;
}

static void walk(const char *dir, const char *rel, ingest_file_list *out, size_t *cap)
{
    DIR *d = opendir(dir);
    if (d == NULL) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char *path = util_path_join(dir, e->d_name);
        char *r = rel[0] ? util_path_join(rel, e->d_name) : strdup(e->d_name);
        struct stat st;
        if (path && r && stat(path, &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                walk(path, r, out, cap);
            } else if (S_ISREG(st.st_mode) && ingest_extract_supported(path)) {
                if (out->count == *cap) {
                    *cap = *cap ? *cap * 2 : 64;
                    out->items = realloc(out->items, *cap * sizeof *out->items);
                    if (out->items == NULL) abort();
                }
                ingest_file *f = &out->items[out->count++];
                f->path = path;
                f->relative = r;
                f->size = st.st_size;
                f->mtime = st.st_mtime;
                continue;
            }
        }
        free(path);
        free(r);
    }
    closedir(d);
}

static int file_cmp(const void *a, const void *b)
{
    return strcmp(((const ingest_file *)a)->relative, ((const ingest_file *)b)->relative);
}

ragd_rc ingest_crawl_run(const char *root, ingest_file_list *out, char **root_abs, ragd_err *err)
{
    char real[PATH_MAX];
    if (realpath(root, real) == NULL)
        return ragd_err_set(err, RAGD_ERR_NOT_FOUND, "path not found: %s", root);
    ingest_file_list list = {0};
    size_t cap = 0;
    walk(real, "", &list, &cap);
    qsort(list.items, list.count, sizeof *list.items, file_cmp);
    *out = list;
    *root_abs = strdup(real);
    return RAGD_OK;
}

void ingest_file_list_free(ingest_file_list *list)
{
    if (list == NULL) return;
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].path);
        free(list->items[i].relative);
    }
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

ragd_rc ingest_extract_run(const char *path, const char *data, size_t len, ingest_doc *out,
                           ragd_err *err)
{
    (void)err;
    int markdown = supported_markdown(path) == 1;
    const char *text = data, *end = data + len;
    char *title = NULL;
    if (markdown && len >= 4 && memcmp(data, "---\n", 4) == 0) {
        const char *p = data + 4;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *le = nl ? nl : end;
            if ((le - p == 3 && memcmp(p, "---", 3) == 0) ||
                (le - p == 3 && memcmp(p, "...", 3) == 0)) {
                text = nl ? nl + 1 : end;
                break;
            }
            if (le - p > 6 && memcmp(p, "title:", 6) == 0 && title == NULL) {
                const char *v = p + 6;
                while (v < le && (*v == ' ' || *v == '"' || *v == '\'')) v++;
                const char *ve = le;
                while (ve > v && (ve[-1] == ' ' || ve[-1] == '"' || ve[-1] == '\'')) ve--;
                title = util_strndup(v, (size_t)(ve - v));
            }
            p = nl ? nl + 1 : end;
        }
    }
    if (markdown && title == NULL) {
        for (const char *p = text; p < end;) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *le = nl ? nl : end;
            if (le - p > 2 && p[0] == '#' && p[1] == ' ') {
                title = util_strndup(p + 2, (size_t)(le - p - 2));
                break;
            }
            p = nl ? nl + 1 : end;
        }
    }
    if (title == NULL) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        const char *dot = strrchr(base, '.');
        title = util_strndup(base, dot ? (size_t)(dot - base) : strlen(base));
    }
    memset(out, 0, sizeof *out);
    out->len = (size_t)(end - text);
    out->text = util_strndup(text, out->len);
    out->title = title;
    out->tags_json = strdup("[]");
    out->metadata_json = strdup("{}");
    out->markdown = markdown;
    return RAGD_OK;
}

void ingest_doc_free(ingest_doc *doc)
{
    if (doc == NULL) return;
    free(doc->text);
    free(doc->title);
    free(doc->tags_json);
    free(doc->metadata_json);
    memset(doc, 0, sizeof *doc);
}
