/* SPDX-License-Identifier: MIT */
/*
 * util.c - small helpers shared by modules: a growable buffer, SHA-256 (OpenSSL EVP), UTF-8
 * validation, "%.17g" of a double in exact integer arithmetic (printf was a few percent of a
 * /retrieve reply's CPU), clocks, and filesystem helpers that make writes durable (fsync before
 * rename, fsync of the directory after).
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

/* ---- "%.17g" without printf ------------------------------------------------------------------ */

/* The exact path: |v| = m * 2^e with m the 53-bit significand and 2^-53 <= |v| < 2^128. Then
 * the decimal exponent X0 = floor(log10 |v|) is in [-16, 38] and the scale p = 16 - X0 that
 * brings |v| to [10^16, 10^17) is in [-22, 32]; for p >= 0, m * 5^p < 2^53 * 5^32 < 2^128, and
 * for p < 0, m * 2^e < 2^128 is divided by 10^-p < 10^23. Both fit unsigned __int128. */
#define G17_EXP2_MIN (-53)
#define G17_EXP2_MAX 127
#define G17_POW5_MAX 32
#define G17_POW10_MAX 38
#define G17_E16 10000000000000000ull
#define G17_E17 100000000000000000ull

typedef unsigned __int128 g17_u128;

static const uint64_t g17_pow5[] = {
    1ull, 5ull, 25ull, 125ull, 625ull, 3125ull, 15625ull, 78125ull, 390625ull, 1953125ull,
    9765625ull, 48828125ull, 244140625ull, 1220703125ull, 6103515625ull, 30517578125ull,
    152587890625ull, 762939453125ull, 3814697265625ull, 19073486328125ull, 95367431640625ull,
    476837158203125ull, 2384185791015625ull, 11920928955078125ull, 59604644775390625ull,
    298023223876953125ull, 1490116119384765625ull, 7450580596923828125ull}; /* 5^0 .. 5^27 */

static const uint64_t g17_pow10[] = {
    1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull, 100000000ull,
    1000000000ull, 10000000000ull, 100000000000ull, 1000000000000ull, 10000000000000ull,
    100000000000000ull, 1000000000000000ull, 10000000000000000ull, 100000000000000000ull,
    1000000000000000000ull, 10000000000000000000ull}; /* 10^0 .. 10^19 */

/* "00" .. "99": two digits at a time. */
static const char g17_pairs[201] = "00010203040506070809101112131415161718192021222324252627282930"
                                   "31323334353637383940414243444546474849505152535455565758596061"
                                   "62636465666768697071727374757677787980818283848586878889909192"
                                   "93949596979899";

/* 10^k as the nearest doubles, k = -16 .. 39: a first guess of X0 (checked exactly after). */
static const double g17_pow10_double[] = {
    1e-16, 1e-15, 1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3,
    1e-2,  1e-1,  1e0,   1e1,   1e2,   1e3,   1e4,   1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12,  1e13,  1e14,  1e15,  1e16,  1e17,  1e18,  1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25,
    1e26,  1e27,  1e28,  1e29,  1e30,  1e31,  1e32,  1e33, 1e34, 1e35, 1e36, 1e37, 1e38, 1e39};
#define G17_POW10_DOUBLE_MIN (-16)

/* Computes m * 2^e * 10^p exactly: *quot its integer part when that is below 2^64, *up 1 when
 * rounding it half to even to an integer goes up. Returns: 1, or 0 when p, e or the quotient are
 * outside what the arithmetic covers (the caller then falls back to snprintf). */
static int g17_scaled(uint64_t m, int e, int p, uint64_t *quot, int *up)
{
    if (p >= 0) {
        if (p > G17_POW5_MAX) return 0;
        g17_u128 pow5 = p < 28 ? g17_pow5[p] : (g17_u128)g17_pow5[27] * g17_pow5[p - 27];
        g17_u128 prod = (g17_u128)m * pow5;
        int shift = e + p; /* m * 2^e * 10^p = prod * 2^shift */
        if (shift >= 0) { /* an integer: exact */
            if (shift > 10 || (prod >> (64 - shift)) != 0) return 0;
            *quot = (uint64_t)(prod << shift);
            *up = 0;
            return 1;
        }
        int s = -shift;
        if (s > 127) return 0;
        g17_u128 q = prod >> s, rem = prod & ((((g17_u128)1) << s) - 1);
        g17_u128 half = ((g17_u128)1) << (s - 1);
        if ((q >> 64) != 0) return 0;
        *quot = (uint64_t)q;
        *up = rem > half || (rem == half && (q & 1) != 0);
        return 1;
    }
    int k = -p; /* m * 2^e / 10^k with e >= 0 */
    if (k > G17_POW10_MAX || e < 0 || e > 75) return 0;
    g17_u128 n = (g17_u128)m << e;
    g17_u128 div = k < 20 ? g17_pow10[k] : (g17_u128)g17_pow10[19] * g17_pow10[k - 19];
    g17_u128 q = n / div, rem = n - q * div, half = div / 2; /* div is even: k >= 1 */
    if ((q >> 64) != 0) return 0;
    *quot = (uint64_t)q;
    *up = rem > half || (rem == half && (q & 1) != 0);
    return 1;
}

/* Returns: snprintf's own "%.17g" of v in out, and its length. */
static size_t g17_printf(double v, char out[UTIL_G17_MAX])
{
    int n = snprintf(out, UTIL_G17_MAX, "%.17g", v);
    return n < 0 ? 0 : (size_t)n;
}

size_t util_double_g17(double v, char out[UTIL_G17_MAX])
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    int negative = (int)(bits >> 63);
    int biased = (int)((bits >> 52) & 0x7FF);
    uint64_t fraction = bits & ((1ull << 52) - 1);
    char *o = out;
    if (negative) *o++ = '-';
    if (biased == 0 && fraction == 0) {
        *o++ = '0';
        *o = '\0';
        return (size_t)(o - out);
    }
    int e2 = biased - 1023; /* 2^e2 <= |v| < 2^(e2+1) */
    if (biased == 0 || e2 < G17_EXP2_MIN || e2 > G17_EXP2_MAX) return g17_printf(v, out);
    uint64_t m = fraction | (1ull << 52);
    int e = e2 - 52;
    /* floor(e2 * log10(2)) (1233 / 4096 is close enough here) is X0 or X0 - 1; the doubles
     * nearest the powers of ten make it X0 but near one of them; the quotient decides exactly. */
    int x = (((e2 + 4096) * 1233) >> 12) - 1233;
    double magnitude = negative ? -v : v;
    if (magnitude >= g17_pow10_double[x + 1 - G17_POW10_DOUBLE_MIN]) x++;
    uint64_t digits;
    int up, tries = 0;
    for (;;) {
        if (tries++ == 3 || !g17_scaled(m, e, 16 - x, &digits, &up)) return g17_printf(v, out);
        if (digits >= G17_E17)
            x++;
        else if (digits < G17_E16)
            x--;
        else
            break;
    }
    digits += (uint64_t)up;
    if (digits == G17_E17) { /* 99999999999999999.5 -> 1.0000000000000000e(X0+1) */
        digits = G17_E16;
        x++;
    }
    char buf[18]; /* the 17 digits in buf[1..17]; buf[0] takes a spare '0' of the first pair */
    uint32_t high = (uint32_t)(digits / 100000000u), low = (uint32_t)(digits % 100000000u);
    for (int i = 16; i >= 10; i -= 2, high /= 100, low /= 100) { /* two pairs at a time */
        memcpy(buf + i, g17_pairs + 2 * (low % 100), 2);
        memcpy(buf + i - 8, g17_pairs + 2 * (high % 100), 2);
    }
    memcpy(buf, g17_pairs + 2 * high, 2); /* high < 10 is left: its pair is "0d" */
    const char *dig = buf + 1;
    int nd = 17; /* significant digits without the trailing zeros %g drops; dig[0] is not '0' */
    while (dig[nd - 1] == '0') nd--;
    if (x < -4 || x >= 17) { /* d.ddde+XX */
        *o++ = dig[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, dig + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        *o++ = 'e';
        *o++ = x < 0 ? '-' : '+';
        unsigned ax = (unsigned)(x < 0 ? -x : x);
        if (ax >= 100) *o++ = (char)('0' + ax / 100);
        *o++ = (char)('0' + ax / 10 % 10);
        *o++ = (char)('0' + ax % 10);
    } else if (x >= 0) { /* ddd.ddd */
        memcpy(o, dig, (size_t)x + 1);
        o += x + 1;
        if (nd > x + 1) {
            *o++ = '.';
            memcpy(o, dig + x + 1, (size_t)(nd - x - 1));
            o += nd - x - 1;
        }
    } else { /* 0.000ddd */
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -x - 1; i++) *o++ = '0';
        memcpy(o, dig, (size_t)nd);
        o += nd;
    }
    *o = '\0';
    return (size_t)(o - out);
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
