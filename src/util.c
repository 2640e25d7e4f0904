/* SPDX-License-Identifier: MIT */
/*
 * util.c - small helpers shared by modules: a growable buffer, SHA-256 (OpenSSL EVP), UTF-8
 * validation, clocks, and filesystem helpers that make writes durable (fsync before rename, fsync of
 * the directory after).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "ragd/util.h"

/* ---- buffer ---------------------------------------------------------------------------------- */

static int buf_reserve(util_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) return -1;
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int util_buf_append(util_buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, n) != 0) return -1;
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int util_buf_puts(util_buf *b, const char *s) { return util_buf_append(b, s, strlen(s)); }

int util_buf_printf(util_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n) != 0) return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *util_buf_steal(util_buf *b)
{
    char *p = b->data;
    if (p == NULL) p = calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void util_buf_free(util_buf *b)
{
    if (b == NULL) return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---- hashing, text, time ---------------------------------------------------------------------- */

void util_sha256_hex(const void *data, size_t len, char out[UTIL_SHA256_HEX_LEN + 1])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    static const char hex[] = "0123456789abcdef";
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        /* EVP_Digest only fails on allocation failure; an all-zero digest would be silently
         * wrong, so make it obviously invalid instead. */
        memset(out, 'x', UTIL_SHA256_HEX_LEN);
        out[UTIL_SHA256_HEX_LEN] = '\0';
        return;
    }
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[UTIL_SHA256_HEX_LEN] = '\0';
}

size_t util_utf8_first_invalid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (len - i <= need) return i;
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += need + 1;
    }
    return len;
}

int util_utf8_valid(const char *s, size_t len) { return util_utf8_first_invalid(s, len) == len; }

/* Returns: the byte length of the unit at s[0..len): a whole valid character, or 1 for a byte
 * that does not start one (*bad set). */
static size_t utf8_unit(const char *s, size_t len, int *bad)
{
    *bad = util_utf8_first_invalid(s, len) == 0 || s[0] == '\0';
    if (*bad) return 1;
    unsigned char c = (unsigned char)s[0];
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

size_t util_utf8_clip(char *dst, size_t dst_size, const char *src, size_t len)
{
    if (dst_size == 0) return 0;
    size_t room = dst_size - 1, out = 0, i = 0, total = 0;
    int bad;
    if (src == NULL) len = 0;
    for (size_t k = 0; k < len && total <= room;) { /* does all of it fit? */
        size_t unit = utf8_unit(src + k, len - k, &bad);
        total += bad ? 1 : unit;
        k += unit;
    }
    /* when it does not, keep 3 bytes for "..." */
    size_t limit = total <= room ? room : room >= 3 ? room - 3 : 0;
    while (i < len) {
        size_t unit = utf8_unit(src + i, len - i, &bad);
        size_t need = bad ? 1 : unit;
        if (out + need > limit) break;
        if (bad)
            dst[out++] = '?';
        else
            memcpy(dst + out, src + i, unit), out += unit;
        i += unit;
    }
    if (i < len) {
        size_t dots = room - out < 3 ? room - out : 3;
        memcpy(dst + out, "...", dots);
        out += dots;
    }
    dst[out] = '\0';
    return out;
}

double util_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

int64_t util_unix_time(void) { return (int64_t)time(NULL); }

int util_cpus_usable(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* ---- filesystem ------------------------------------------------------------------------------- */

ragd_rc util_mkdir_p(const char *dir, ragd_err *err)
{
    size_t n = strlen(dir);
    if (n == 0) return ragd_err_set(err, RAGD_ERR_INVALID, "empty directory name");
    char *tmp = util_strndup(dir, n);
    if (tmp == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    for (char *p = tmp + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
                int e = errno;
                ragd_err_set(err, RAGD_ERR_IO, "cannot create directory %s: %s", tmp, strerror(e));
                free(tmp);
                return RAGD_ERR_IO;
            }
            *p = saved;
            if (saved == '\0') break;
        }
    }
    free(tmp);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return ragd_err_set(err, RAGD_ERR_IO, "%s is not a directory", dir);
    return RAGD_OK;
}

ragd_rc util_file_read(const char *path, size_t max_bytes, char **out, size_t *len, ragd_err *err)
{
    /* O_NONBLOCK: a FIFO or device at path must not block the open; util_fd_read refuses it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        return ragd_err_set(err, e == ENOENT ? RAGD_ERR_NOT_FOUND : RAGD_ERR_IO,
                            "cannot open %s: %s", path, strerror(e));
    }
    return util_fd_read(fd, path, max_bytes, out, len, err);
}

ragd_rc util_fd_read(int fd, const char *path, size_t max_bytes, char **out, size_t *len,
                     ragd_err *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ragd_err_set(err, RAGD_ERR_IO, "%s is not a regular file", path);
    }
    if ((uint64_t)st.st_size > (uint64_t)max_bytes) {
        close(fd);
        return ragd_err_set(err, RAGD_ERR_TOO_LARGE, "%s is %lld bytes, over the limit of %zu",
                            path, (long long)st.st_size, max_bytes);
    }
    size_t cap = (size_t)st.st_size;
    char *data = malloc(cap + 1);
    if (data == NULL) {
        close(fd);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory reading %s", path);
    }
    size_t got = 0;
    for (;;) {
        if (got == cap) {
            /* The file may have grown since fstat: read on, within the limit. */
            char probe;
            ssize_t r = read(fd, &probe, 1);
            if (r == 0) break;
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) goto io_error;
            if (cap + 1 > max_bytes) {
                free(data);
                close(fd);
                return ragd_err_set(err, RAGD_ERR_TOO_LARGE, "%s grew over the limit of %zu",
                                    path, max_bytes);
            }
            size_t ncap = cap * 2 + 4096;
            if (ncap > max_bytes) ncap = max_bytes;
            char *p = realloc(data, ncap + 1);
            if (p == NULL) {
                free(data);
                close(fd);
                return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory reading %s", path);
            }
            data = p;
            data[got++] = probe;
            cap = ncap;
            continue;
        }
        ssize_t r = read(fd, data + got, cap - got);
        if (r == 0) break;
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) goto io_error;
        got += (size_t)r;
    }
    close(fd);
    data[got] = '\0';
    *out = data;
    *len = got;
    return RAGD_OK;

io_error: {
    int e = errno;
    free(data);
    close(fd);
    return ragd_err_set(err, RAGD_ERR_IO, "cannot read %s: %s", path, strerror(e));
}
}

ragd_rc util_dir_fsync_parent(const char *path, ragd_err *err)
{
    char *copy = strdup(path);
    if (copy == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    const char *dir = dirname(copy);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        ragd_err_set(err, RAGD_ERR_IO, "cannot open directory %s: %s", dir, strerror(e));
        free(copy);
        return RAGD_ERR_IO;
    }
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0) {
        ragd_err_set(err, RAGD_ERR_IO, "cannot fsync directory %s: %s", dir, strerror(e));
        free(copy);
        return RAGD_ERR_IO;
    }
    free(copy);
    return RAGD_OK;
}

ragd_rc util_file_write_atomic(const char *path, const void *data, size_t len, ragd_err *err)
{
    size_t n = strlen(path);
    char *tmp = malloc(n + 5);
    if (tmp == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        ragd_err_set(err, RAGD_ERR_IO, "cannot create %s: %s", tmp, strerror(e));
        free(tmp);
        return RAGD_ERR_IO;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            ragd_err_set(err, RAGD_ERR_IO, "cannot write %s: %s", tmp, strerror(e));
            free(tmp);
            return RAGD_ERR_IO;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        ragd_err_set(err, RAGD_ERR_IO, "cannot sync %s: %s", tmp, strerror(e));
        free(tmp);
        return RAGD_ERR_IO;
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        ragd_err_set(err, RAGD_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(e));
        free(tmp);
        return RAGD_ERR_IO;
    }
    free(tmp);
    return util_dir_fsync_parent(path, err);
}

char *util_path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    while (a > 1 && dir[a - 1] == '/') a--;
    while (b > 0 && name[0] == '/') {
        name++;
        b--;
    }
    char *p = malloc(a + 1 + b + 1);
    if (p == NULL) return NULL;
    memcpy(p, dir, a);
    size_t n = a;
    if (a == 0 || dir[a - 1] != '/') p[n++] = '/';
    memcpy(p + n, name, b);
    p[n + b] = '\0';
    return p;
}

char *util_strndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p == NULL) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* ---- URLs and identifiers ------------------------------------------------------------------ */

char *util_url_redact(const char *url)
{
    if (url == NULL) return NULL;
    util_buf b = {0};
    const char *scheme = strstr(url, "://");
    const char *p = url;
    int bad = 0;
    if (scheme != NULL) {
        const char *auth = scheme + 3;
        size_t host_start = strcspn(auth, "/?#");
        const char *at = memchr(auth, '@', host_start);
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon != NULL) {
            bad |= util_buf_append(&b, url, (size_t)(colon - url) + 1) != 0;
            bad |= util_buf_puts(&b, "<redacted>") != 0;
            p = at;
        }
    }
    /* key=value parameters (query string or a conninfo string): password=... */
    while (!bad && *p) {
        const char *pw = strstr(p, "password=");
        if (pw == NULL) {
            bad |= util_buf_puts(&b, p) != 0;
            break;
        }
        int key = pw == url || strchr("?&; \t", pw[-1]) != NULL;
        bad |= util_buf_append(&b, p, (size_t)(pw - p) + 9) != 0;
        p = pw + 9;
        if (key) {
            bad |= util_buf_puts(&b, "<redacted>") != 0;
            p += strcspn(p, "&; \t");
        }
    }
    if (bad) {
        util_buf_free(&b);
        return NULL;
    }
    if (b.data == NULL) return strdup("");
    return util_buf_steal(&b);
}

int util_sql_identifier_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 63 || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_')) return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}
