/* SPDX-License-Identifier: MIT */
/*
 * ingest_crawl.c - lists the files an ingest run should read: a single supported file, or every
 * supported file under a directory, walked recursively with opendir/readdir. Hidden entries
 * (names starting with '.') are skipped; symlinks are followed only when their target's real path
 * stays inside the root (the others are listed as skipped, never opened), include/exclude globs
 * select files by relative path, and each directory is entered at most once, so link cycles end. The
 * result is sorted by relative path (byte order) so runs are deterministic.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ragd/ingest.h"
#include "ragd/log.h"
#include "ragd/util.h"

typedef struct dir_id {
    dev_t dev;
    ino_t ino;
} dir_id;

typedef struct crawl {
    const ingest_crawl_opts *opts; /* never NULL */
    const char *root_abs;
    size_t root_len;
    ingest_file_list list;
    size_t cap;
    dir_id *seen;
    size_t nseen, capseen;
} crawl;

/* Returns: 1 if canonical path p is root or below it. */
static int inside_root(const crawl *c, const char *p)
{
    if (strncmp(p, c->root_abs, c->root_len) != 0) return 0;
    if (c->root_len == 1) return 1; /* root is "/" */
    return p[c->root_len] == '\0' || p[c->root_len] == '/';
}

/* Records a directory. Returns: 1 if it was new, 0 if already seen, -1 on OOM. */
static int seen_add(crawl *c, const struct stat *st)
{
    for (size_t i = 0; i < c->nseen; i++)
        if (c->seen[i].dev == st->st_dev && c->seen[i].ino == st->st_ino) return 0;
    if (c->nseen == c->capseen) {
        size_t cap = c->capseen ? c->capseen * 2 : 32;
        dir_id *p = realloc(c->seen, cap * sizeof *p);
        if (p == NULL) return -1;
        c->seen = p;
        c->capseen = cap;
    }
    c->seen[c->nseen].dev = st->st_dev;
    c->seen[c->nseen].ino = st->st_ino;
    c->nseen++;
    return 1;
}

/* Adds a file; steals real and relative (frees them on failure). Returns: 0 or -1 on OOM. */
static int file_add(crawl *c, char *real, char *relative, const struct stat *st)
{
    if (c->list.count == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        ingest_file *p = realloc(c->list.items, cap * sizeof *p);
        if (p == NULL) {
            free(real);
            free(relative);
            return -1;
        }
        c->list.items = p;
        c->cap = cap;
    }
    ingest_file *f = &c->list.items[c->list.count++];
    f->path = real;
    f->relative = relative;
    f->size = (int64_t)st->st_size;
    f->mtime = (int64_t)st->st_mtime;
    return 0;
}

/* Records an entry that was not read; steals relative. Returns: 0 or -1 on OOM. */
static int skipped_add(crawl *c, char *relative, const char *reason)
{
    char *why = strdup(reason);
    ingest_file *p = why ? realloc(c->list.skipped, (c->list.skipped_count + 1) * sizeof *p)
                         : NULL;
    if (p == NULL) {
        free(why);
        free(relative);
        return -1;
    }
    c->list.skipped = p;
    p[c->list.skipped_count++] = (ingest_file){.path = why, .relative = relative};
    return 0;
}

/* Walks directory abs (shown to the user as rel, "" for the root). Returns: 0 or -1 on OOM. */
static int walk(crawl *c, const char *abs, const char *rel)
{
    DIR *dir = opendir(abs);
    if (dir == NULL) {
        RAGD_LOG(RAGD_LOG_WARN, "ingest", "cannot open directory %s: %s", abs, strerror(errno));
        c->list.unreadable++;
        return 0;
    }
    int rc = 0;
    struct dirent *de;
    for (;;) {
        errno = 0;
        if (rc != 0 || (de = readdir(dir)) == NULL) break;
        if (de->d_name[0] == '.') continue;
        char *child = util_path_join(abs, de->d_name);
        char *child_rel = rel[0] ? util_path_join(rel, de->d_name) : strdup(de->d_name);
        char *real = NULL;
        struct stat lst, st;
        if (child == NULL || child_rel == NULL) {
            rc = -1;
            goto next;
        }
        if (lstat(child, &lst) != 0) {
            if (errno != ENOENT) c->list.unreadable++; /* vanished since readdir: not an error */
            goto next;
        }
        if (S_ISLNK(lst.st_mode)) {
            real = realpath(child, NULL);
            if (real != NULL && !inside_root(c, real)) {
                /* Never read: reported so the operator sees what was left out. */
                RAGD_LOG(RAGD_LOG_WARN, "ingest", "%s: symlink to %s leaves the root; skipped",
                         child_rel, real);
                rc = skipped_add(c, child_rel, "symlink points outside the ingested root; "
                                 "skipped, not read");
                child_rel = NULL;
                goto next;
            }
            if (real == NULL || stat(real, &st) != 0) goto next;
        } else {
            st = lst;
        }
        if (S_ISDIR(st.st_mode)) {
            int fresh = seen_add(c, &st);
            if (fresh < 0)
                rc = -1;
            else if (fresh)
                rc = walk(c, child, child_rel);
        } else if (S_ISREG(st.st_mode) && ingest_extract_accepted(de->d_name, c->opts->extract) &&
                   ingest_glob_selected(c->opts->globs, child_rel)) {
            if (real == NULL) real = realpath(child, NULL);
            if (real != NULL) {
                rc = file_add(c, real, child_rel, &st);
                real = NULL;
                child_rel = NULL;
            }
        }
    next:
        free(real);
        free(child);
        free(child_rel);
    }
    if (rc == 0 && errno != 0) {
        RAGD_LOG(RAGD_LOG_WARN, "ingest", "cannot read directory %s: %s", abs, strerror(errno));
        c->list.unreadable++;
    }
    closedir(dir);
    return rc;
}

static int file_cmp(const void *a, const void *b)
{
    return strcmp(((const ingest_file *)a)->relative, ((const ingest_file *)b)->relative);
}

static int alias_cmp(const void *a, const void *b)
{
    const ingest_file *x = *(ingest_file *const *)a, *y = *(ingest_file *const *)b;
    int c = strcmp(x->path, y->path);
    return c != 0 ? c : strcmp(x->relative, y->relative);
}

/* Keeps one entry per real file: a file reached under several names (an in-root symlink to it)
 * is the document of its first relative name in byte order, so runs agree on its source.
 * The list stays sorted by relative path. Returns: 0, or -1 on OOM (list unchanged). */
static int aliases_drop(ingest_file_list *list)
{
    if (list->count < 2) return 0;
    ingest_file **byreal = malloc(sizeof *byreal * list->count);
    if (byreal == NULL) return -1;
    for (size_t i = 0; i < list->count; i++) byreal[i] = &list->items[i];
    qsort(byreal, list->count, sizeof *byreal, alias_cmp);
    for (size_t i = 1; i < list->count; i++) {
        if (strcmp(byreal[i]->path, byreal[i - 1]->path) != 0) continue;
        /* byreal[i] is a later alias of the same file: mark it for removal. */
        free(byreal[i]->relative);
        byreal[i]->relative = NULL;
    }
    free(byreal);
    size_t kept = 0;
    for (size_t i = 0; i < list->count; i++) {
        if (list->items[i].relative == NULL) {
            free(list->items[i].path);
            continue;
        }
        list->items[kept++] = list->items[i];
    }
    list->count = kept;
    return 0;
}

ragd_rc ingest_crawl_run(const char *root, ingest_file_list *out, char **root_abs, ragd_err *err)
{
    return ingest_crawl_scan(root, NULL, out, root_abs, err);
}

ragd_rc ingest_crawl_scan(const char *root, const ingest_crawl_opts *opts, ingest_file_list *out,
                          char **root_abs, ragd_err *err)
{
    static const ingest_crawl_opts no_opts = {NULL, NULL};
    if (root == NULL || out == NULL || root_abs == NULL)
        return ragd_err_set(err, RAGD_ERR_INVALID, "crawl: missing argument");
    struct stat st;
    if (stat(root, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return ragd_err_set(err, RAGD_ERR_NOT_FOUND, "path not found: %s", root);
        return ragd_err_set(err, RAGD_ERR_IO, "cannot stat %s: %s", root, strerror(errno));
    }
    char *real = realpath(root, NULL);
    if (real == NULL)
        return ragd_err_set(err, RAGD_ERR_IO, "cannot resolve %s: %s", root, strerror(errno));
    crawl c = {.opts = opts ? opts : &no_opts};
    ragd_rc rc = RAGD_OK;
    if (S_ISREG(st.st_mode)) {
        if (!ingest_extract_accepted(real, c.opts->extract)) {
            free(real);
            return ragd_err_set(err, RAGD_ERR_INVALID, "unsupported file type: %s", root);
        }
        char *slash = strrchr(real, '/');
        char *name = strdup(slash + 1);
        char *file = strdup(real);
        slash[slash == real ? 1 : 0] = '\0'; /* the directory; "/" for a file at the top */
        if (name == NULL || file == NULL) {
            free(name);
            free(file);
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "crawl: out of memory");
        } else if (file_add(&c, file, name, &st) != 0) {
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "crawl: out of memory");
        }
    } else if (S_ISDIR(st.st_mode)) {
        c.root_abs = real;
        c.root_len = strlen(real);
        DIR *probe = opendir(real);
        if (probe == NULL) {
            rc = ragd_err_set(err, RAGD_ERR_IO, "cannot open directory %s: %s", root,
                              strerror(errno));
        } else {
            closedir(probe);
            if (seen_add(&c, &st) < 0 || walk(&c, real, "") != 0)
                rc = ragd_err_set(err, RAGD_ERR_NOMEM, "crawl: out of memory");
        }
    } else {
        rc = ragd_err_set(err, RAGD_ERR_INVALID, "not a file or directory: %s", root);
    }
    free(c.seen);
    if (rc != RAGD_OK) {
        ingest_file_list_free(&c.list);
        free(real);
        return rc;
    }
    if (c.list.count > 1) qsort(c.list.items, c.list.count, sizeof *c.list.items, file_cmp);
    if (aliases_drop(&c.list) != 0) {
        ingest_file_list_free(&c.list);
        free(real);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "crawl: out of memory");
    }
    *out = c.list;
    *root_abs = real;
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
    for (size_t i = 0; i < list->skipped_count; i++) {
        free(list->skipped[i].path);
        free(list->skipped[i].relative);
    }
    free(list->skipped);
    list->skipped = NULL;
    list->skipped_count = 0;
}
