/* SPDX-License-Identifier: MIT */
/*
 * ingest_crawl.c - lists the files an ingest run should read, and reads them without leaving the
 * root. The root is a single supported file, or a directory walked recursively: every directory is
 * opened from the root's descriptor one component at a time with O_NOFOLLOW, so no race with the
 * file system (a file or directory swapped for a symlink mid-walk) can lead the crawl or a read
 * outside the root. Hidden entries (names starting with '.') are skipped; symlinks are followed
 * only when their target's real path stays inside the root (the others are listed as skipped, never
 * opened); include/exclude globs select files by relative path; each directory is entered at most
 * once, so link cycles end. Each file records where its bytes are (a symlink-free path below the
 * root) and the device and inode seen there; ingest_file_read opens that path the same way,
 * non-blocking, and reads only the regular file the crawl saw. Documents are named by their path
 * inside the root, never by a symlink target's. The result is sorted by relative path (byte
 * order) so runs are deterministic.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ragd/ingest.h"
#include "ragd/log.h"
#include "ragd/util.h"

/* Deepest directory level below the root that is walked. */
#define RAGD_CRAWL_MAX_DEPTH 64

typedef struct dir_id {
    dev_t dev;
    ino_t ino;
} dir_id;

typedef struct crawl {
    const ingest_crawl_opts *opts; /* never NULL */
    const char *root_abs;
    size_t root_len;
    int root_fd;
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

/* Adds a file; steals path, relative and resolved (frees them on failure).
 * Returns: 0 or -1 on OOM. */
static int file_add(crawl *c, char *path, char *relative, char *resolved, const struct stat *st)
{
    if (c->list.count == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        ingest_file *p = realloc(c->list.items, cap * sizeof *p);
        if (p == NULL) {
            free(path);
            free(relative);
            free(resolved);
            return -1;
        }
        c->list.items = p;
        c->cap = cap;
    }
    ingest_file *f = &c->list.items[c->list.count++];
    f->path = path;
    f->relative = relative;
    f->resolved = resolved;
    f->size = (int64_t)st->st_size;
    f->mtime = (int64_t)st->st_mtime;
    f->dev = (uint64_t)st->st_dev;
    f->ino = (uint64_t)st->st_ino;
    f->root_fd = c->root_fd;
    return 0;
}

/* Opens rel (relative to dir_fd; "" is dir_fd's directory itself) one component at a time,
 * following no symlink: every component but the last must be a real directory, the last is opened
 * with flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC. Components "", "." and ".." are refused, so the
 * result is always below dir_fd. Returns: a new descriptor (close()), or -1 with errno set (ELOOP
 * when a symlink is on the way). */
static int open_beneath(int dir_fd, const char *rel, int flags)
{
    if (rel[0] == '\0') return openat(dir_fd, ".", flags | O_NONBLOCK | O_CLOEXEC);
    int cur = dir_fd;
    const char *p = rel;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        char name[NAME_MAX + 1];
        if (n == 0 || n > NAME_MAX || (n == 1 && p[0] == '.') ||
            (n == 2 && p[0] == '.' && p[1] == '.')) {
            if (cur != dir_fd) close(cur);
            errno = EINVAL;
            return -1;
        }
        memcpy(name, p, n);
        name[n] = '\0';
        int next = slash ? openat(cur, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                         : openat(cur, name, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
                                             O_NOCTTY);
        int en = errno;
        if (cur != dir_fd) close(cur);
        if (next < 0) {
            errno = en;
            return -1;
        }
        if (slash == NULL) return next;
        cur = next;
        p = slash + 1;
    }
}

/* Opens the directory at canonical path dir (from realpath) from "/" without following links,
 * so the descriptor is the directory that path named when realpath ran, not what a symlink
 * swapped in since leads to. Returns: a new O_PATH descriptor, or -1 with errno set. */
static int open_canonical_dir(const char *dir)
{
    if (dir[0] != '/') {
        errno = EINVAL;
        return -1;
    }
    int top = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (top < 0 || dir[1] == '\0') return top;
    int fd = open_beneath(top, dir + 1, O_PATH | O_DIRECTORY);
    int en = errno;
    close(top);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISDIR(st.st_mode))) {
        close(fd);
        fd = -1;
        en = ELOOP;
    }
    errno = en;
    return fd;
}

/* Records why the root (or a single file's directory) could not be opened; errno from
 * open_canonical_dir. Returns: the rc recorded. */
static ragd_rc root_open_failed(const char *root, ragd_err *err)
{
    int en = errno;
    if (en == ELOOP || en == ENOTDIR)
        return ragd_err_set(err, RAGD_ERR_FORBIDDEN, "%s changed while it was being opened (a "
                            "symlink appeared on it); nothing read", root);
    if (en == ENOENT)
        return ragd_err_set(err, RAGD_ERR_NOT_FOUND, "path not found: %s", root);
    return ragd_err_set(err, RAGD_ERR_IO, "cannot open directory %s: %s", root, strerror(en));
}

/* Returns: a new string "a/b" (just b when a is empty), or NULL on OOM. */
static char *rel_join(const char *a, const char *b)
{
    return a[0] ? util_path_join(a, b) : strdup(b);
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

/* Walks the directory at resolved (symlink-free, relative to the root's descriptor; "" for the
 * root), shown to the user as rel. Returns: 0 or -1 on OOM. */
static int walk(crawl *c, const char *resolved, const char *rel, int depth)
{
    int fd = open_beneath(c->root_fd, resolved, O_RDONLY | O_DIRECTORY);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (dir == NULL) {
        RAGD_LOG(RAGD_LOG_WARN, "ingest", "cannot open directory %s: %s", rel[0] ? rel : ".",
                 strerror(errno));
        if (fd >= 0) close(fd);
        c->list.unreadable++;
        return 0;
    }
    int rc = 0;
    struct dirent *de;
    for (;;) {
        errno = 0;
        if (rc != 0 || (de = readdir(dir)) == NULL) break;
        if (de->d_name[0] == '.') continue;
        char *child_res = rel_join(resolved, de->d_name); /* where it is */
        char *child_rel = rel_join(rel, de->d_name);      /* what the user sees */
        char *real = NULL, *target = NULL;
        struct stat lst, st;
        if (child_res == NULL || child_rel == NULL) {
            rc = -1;
            goto next;
        }
        if (fstatat(dirfd(dir), de->d_name, &lst, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno != ENOENT) c->list.unreadable++; /* vanished since readdir: not an error */
            goto next;
        }
        if (S_ISLNK(lst.st_mode)) {
            /* realpath only proposes where the link leads; that path is then opened from the
             * root without following links, so a link changed since cannot lead outside. */
            char *abs = util_path_join(c->root_abs, child_res);
            if (abs == NULL) {
                rc = -1;
                goto next;
            }
            real = realpath(abs, NULL);
            free(abs);
            if (real != NULL && !inside_root(c, real)) {
                /* Never read: reported so the operator sees what was left out. */
                RAGD_LOG(RAGD_LOG_WARN, "ingest", "%s: symlink to %s leaves the root; skipped",
                         child_rel, real);
                rc = skipped_add(c, child_rel, "symlink points outside the ingested root; "
                                 "skipped, not read");
                child_rel = NULL;
                goto next;
            }
            if (real == NULL) goto next; /* dangling */
            /* inside_root held: real is the root, or the root, '/' and the rest */
            target = strdup(c->root_len == 1             ? real + 1 /* root is "/" */
                            : real[c->root_len] == '/' ? real + c->root_len + 1
                                                       : "");
            if (target == NULL) {
                rc = -1;
                goto next;
            }
            int tfd = open_beneath(c->root_fd, target, O_PATH);
            int ok = tfd >= 0 && fstat(tfd, &st) == 0;
            if (tfd >= 0) close(tfd);
            if (!ok) goto next;
            free(child_res);
            child_res = target;
            target = NULL;
        } else {
            st = lst;
        }
        if (S_ISDIR(st.st_mode)) {
            int fresh = seen_add(c, &st);
            if (fresh < 0)
                rc = -1;
            else if (fresh && depth >= RAGD_CRAWL_MAX_DEPTH) {
                /* Not a documentation tree: bounded so that no tree stops the crawl (the
                 * recursion, and opening each level from the root, grow with the depth). */
                RAGD_LOG(RAGD_LOG_WARN, "ingest", "%s: more than %d directory levels; not read",
                         child_rel, RAGD_CRAWL_MAX_DEPTH);
                c->list.unreadable++; /* nothing under it may look deleted */
                rc = skipped_add(c, child_rel, "directory nested too deep; not read");
                child_rel = NULL;
            } else if (fresh)
                rc = walk(c, child_res, child_rel, depth + 1);
        } else if (S_ISREG(st.st_mode) && ingest_extract_accepted(de->d_name, c->opts->extract) &&
                   ingest_glob_selected(c->opts->globs, child_rel)) {
            char *path = util_path_join(c->root_abs, child_rel);
            if (path == NULL) {
                rc = -1;
                goto next;
            }
            rc = file_add(c, path, child_rel, child_res, &st);
            child_rel = NULL;
            child_res = NULL;
        }
    next:
        free(real);
        free(target);
        free(child_res);
        free(child_rel);
    }
    if (rc == 0 && errno != 0) {
        RAGD_LOG(RAGD_LOG_WARN, "ingest", "cannot read directory %s: %s", rel[0] ? rel : ".",
                 strerror(errno));
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
    if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
    return strcmp(x->relative, y->relative);
}

/* Keeps one entry per file (device and inode): a file reached under several names (an in-root
 * symlink to it) is the document of its first relative name in byte order, so runs agree on its
 * source. The list stays sorted by relative path. Returns: 0, or -1 on OOM (list unchanged). */
static int aliases_drop(ingest_file_list *list)
{
    if (list->count < 2) return 0;
    ingest_file **byid = malloc(sizeof *byid * list->count);
    if (byid == NULL) return -1;
    for (size_t i = 0; i < list->count; i++) byid[i] = &list->items[i];
    qsort(byid, list->count, sizeof *byid, alias_cmp);
    for (size_t i = 1; i < list->count; i++) {
        if (byid[i]->dev != byid[i - 1]->dev || byid[i]->ino != byid[i - 1]->ino) continue;
        /* byid[i] is a later alias of the same file: mark it for removal (its relative name
         * stays until the sweep, for the comparison with the next alias). */
        byid[i]->size = -1;
    }
    free(byid);
    size_t kept = 0;
    for (size_t i = 0; i < list->count; i++) {
        if (list->items[i].size < 0) {
            free(list->items[i].path);
            free(list->items[i].relative);
            free(list->items[i].resolved);
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
    static const ingest_crawl_opts no_opts = {NULL, NULL, 0};
    if (root == NULL || out == NULL || root_abs == NULL)
        return ragd_err_set(err, RAGD_ERR_INVALID, "crawl: missing argument");
    struct stat st;
    if (stat(root, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return ragd_err_set(err, RAGD_ERR_NOT_FOUND, "path not found: %s", root);
        return ragd_err_set(err, RAGD_ERR_IO, "cannot stat %s: %s", root, strerror(errno));
    }
    char *real = realpath(root, NULL);
    if (real == NULL && (errno == ENOENT || errno == ENOTDIR)) /* vanished since the stat */
        return ragd_err_set(err, RAGD_ERR_NOT_FOUND, "path not found: %s", root);
    if (real == NULL)
        return ragd_err_set(err, RAGD_ERR_IO, "cannot resolve %s: %s", root, strerror(errno));
    if (opts && opts->root_canonical && strcmp(real, root) != 0) {
        /* checked as root, now elsewhere: a symlink was swapped in on the path since */
        free(real);
        return ragd_err_set(err, RAGD_ERR_FORBIDDEN, "%s changed while it was being checked (it "
                            "now leads elsewhere); nothing read", root);
    }
    crawl c = {.opts = opts ? opts : &no_opts, .root_fd = -1};
    ragd_rc rc = RAGD_OK;
    if (S_ISREG(st.st_mode)) {
        if (!ingest_extract_accepted(real, c.opts->extract)) {
            free(real);
            return ragd_err_set(err, RAGD_ERR_INVALID, "unsupported file type: %s", root);
        }
        char *slash = strrchr(real, '/');
        char *name = strdup(slash + 1);
        char *resolved = strdup(slash + 1);
        char *file = strdup(real);
        slash[slash == real ? 1 : 0] = '\0'; /* the directory; "/" for a file at the top */
        int fd = open_canonical_dir(real);
        struct stat fst;
        if (fd < 0) {
            rc = root_open_failed(root, err);
        } else if (name == NULL || file == NULL || resolved == NULL) {
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "crawl: out of memory");
        } else if (fstatat(fd, name, &fst, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(fst.st_mode)) {
            /* replaced since the stat above */
            rc = ragd_err_set(err, RAGD_ERR_IO, "%s changed while it was being opened", root);
        }
        if (fd >= 0) {
            c.root_fd = fd;
            c.list.root_fd = fd;
            c.list.root_fd_open = 1;
        }
        if (rc != RAGD_OK) {
            free(name);
            free(file);
            free(resolved);
        } else if (file_add(&c, file, name, resolved, &fst) != 0) {
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "crawl: out of memory");
        }
    } else if (S_ISDIR(st.st_mode)) {
        c.root_abs = real;
        c.root_len = strlen(real);
        int fd = open_canonical_dir(real);
        struct stat rst;
        if (fd < 0 || fstat(fd, &rst) != 0) {
            rc = root_open_failed(root, err);
            if (fd >= 0) close(fd);
        } else {
            c.root_fd = fd;
            c.list.root_fd = fd;
            c.list.root_fd_open = 1;
            int probe = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (probe < 0) {
                rc = ragd_err_set(err, RAGD_ERR_IO, "cannot open directory %s: %s", root,
                                  strerror(errno));
            } else {
                close(probe);
                if (seen_add(&c, &rst) < 0 || walk(&c, "", "", 0) != 0)
                    rc = ragd_err_set(err, RAGD_ERR_NOMEM, "crawl: out of memory");
            }
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

ragd_rc ingest_file_read(const ingest_file *f, size_t max_bytes, char **out, size_t *len,
                         ragd_err *err)
{
    int fd = open_beneath(f->root_fd, f->resolved, O_RDONLY);
    if (fd < 0) {
        int en = errno;
        if (en == ENOENT)
            return ragd_err_set(err, RAGD_ERR_NOT_FOUND, "%s vanished since the crawl",
                                f->relative);
        if (en == ELOOP || en == ENOTDIR)
            return ragd_err_set(err, RAGD_ERR_IO, "%s: a symlink or non-directory took the "
                                "place of part of its path since the crawl; not read",
                                f->relative);
        return ragd_err_set(err, RAGD_ERR_IO, "cannot open %s: %s", f->relative, strerror(en));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int en = errno;
        close(fd);
        return ragd_err_set(err, RAGD_ERR_IO, "cannot stat %s: %s", f->relative, strerror(en));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ragd_err_set(err, RAGD_ERR_IO, "%s is no longer a regular file (a FIFO, device or "
                            "socket took its place); not read", f->relative);
    }
    if ((uint64_t)st.st_dev != f->dev || (uint64_t)st.st_ino != f->ino) {
        close(fd);
        return ragd_err_set(err, RAGD_ERR_IO, "%s was replaced by another file since the crawl; "
                            "not read (ingest again to pick it up)", f->relative);
    }
    /* O_NONBLOCK means nothing for a regular file; cleared anyway for plain reads. */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return util_fd_read(fd, f->relative, max_bytes, out, len, err);
}

void ingest_file_list_free(ingest_file_list *list)
{
    if (list == NULL) return;
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].path);
        free(list->items[i].relative);
        free(list->items[i].resolved);
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
    if (list->root_fd_open) close(list->root_fd);
    list->root_fd_open = 0;
    list->root_fd = -1;
}
