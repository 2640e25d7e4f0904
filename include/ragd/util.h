/* SPDX-License-Identifier: MIT */
/*
 * util.h - small helpers shared by modules: a growable byte buffer, SHA-256, UTF-8 validation,
 * "%.17g" of a double without printf, clocks, and filesystem helpers (mkdir -p, whole-file read
 * with a size limit, durable write).
 */
#ifndef RAGD_UTIL_H
#define RAGD_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "ragd/ragd.h"

/* A growable NUL-terminated byte buffer. Zero-initialise ({0}) before first use. */
typedef struct util_buf {
    char *data; /* NUL-terminated when non-NULL; owned by the buffer */
    size_t len;
    size_t cap;
} util_buf;

/* Appends n bytes. Returns: 0, or -1 on allocation failure (buffer unchanged). */
int util_buf_append(util_buf *b, const char *s, size_t n);
/* Appends a NUL-terminated string. Returns: 0 or -1. */
int util_buf_puts(util_buf *b, const char *s);
/* Appends printf-style. Returns: 0 or -1. */
int util_buf_printf(util_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Returns: the buffer's data, now owned by the caller (free with free()); the buffer is reset.
 * Returns an empty malloc()ed string when the buffer is empty, NULL on allocation failure. */
char *util_buf_steal(util_buf *b);
/* Frees the data and resets the buffer. */
void util_buf_free(util_buf *b);

#define UTIL_SHA256_HEX_LEN 64
/* Writes the lowercase hex SHA-256 of data (65 bytes with the NUL) into out. */
void util_sha256_hex(const void *data, size_t len, char out[UTIL_SHA256_HEX_LEN + 1]);

struct json_t;
/* Returns: v's compact JSON text (src/util_json.c), byte for byte json_dumps(v, JSON_COMPACT |
 * (ensure_ascii ? JSON_ENSURE_ASCII : 0)), new (free()), its length in *len (len may be NULL);
 * NULL when v is not an object or array, a string in it is not UTF-8, it nests deeper than the
 * writer goes, or on OOM: then use json_dumps, which decides as it always did. v is borrowed. */
char *util_json_text(const struct json_t *v, int ensure_ascii, size_t *len);

#define UTIL_G17_MAX 32 /* bytes util_double_g17 may write, NUL included (it uses at most 25) */
/* Writes v as snprintf(out, UTIL_G17_MAX, "%.17g", v) does in the "C" locale, byte for byte, and
 * NUL-terminates it. Returns: the length (without the NUL). Normal |v| in [2^-53, 2^128)
 * (about 1.1e-16 to 3.4e38) is formatted with exact integer arithmetic: the 17 significant
 * digits are the exact value m * 2^e * 10^p rounded half to even, as glibc rounds in the
 * default rounding mode (ragd never changes it); 0 and -0 are written directly; anything else
 * (subnormals, smaller or larger magnitudes, inf, nan) is handed to snprintf itself. */
size_t util_double_g17(double v, char out[UTIL_G17_MAX]);

/* Returns: 1 if s[0..len) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF), else 0. */
int util_utf8_valid(const char *s, size_t len);

/* Returns: the offset of the first byte of s[0..len) that does not start a valid UTF-8 sequence
 * (same rules as util_utf8_valid), or len when all of it is valid. */
size_t util_utf8_first_invalid(const char *s, size_t len);

/* Copies src[0..len) into dst (dst_size bytes, > 4) as valid UTF-8 for messages that echo user
 * input: each byte that does not start a valid sequence (and NUL) becomes '?', and when the copy
 * does not fit it is cut at a character boundary and ends in "...". Never cuts inside a
 * multibyte character. Returns: the bytes written (without the NUL); dst is NUL-terminated. */
size_t util_utf8_clip(char *dst, size_t dst_size, const char *src, size_t len);

/* Returns: monotonic time in milliseconds, as a double with sub-millisecond precision. */
double util_now_ms(void);
/* Returns: wall-clock seconds since the epoch. */
int64_t util_unix_time(void);

/* Returns: the CPUs this process may run on (its affinity mask, e.g. under taskset or a cgroup
 * cpuset), else the online ones, at least 1. */
int util_cpus_usable(void);

/* Creates dir and its parents (mode 0755). Returns: RAGD_OK or RAGD_ERR_IO. */
ragd_rc util_mkdir_p(const char *dir, ragd_err *err);

/* Reads a whole file. Files over max_bytes fail with RAGD_ERR_TOO_LARGE.
 * Returns: RAGD_OK and *out (new, NUL-terminated, free with free()) and *len. */
ragd_rc util_file_read(const char *path, size_t max_bytes, char **out, size_t *len, ragd_err *err);

/* util_file_read of an open descriptor; steals fd (always closed). Anything but a regular file
 * fails with RAGD_ERR_IO before a byte is read, so a FIFO or device opened with O_NONBLOCK never
 * blocks. path names the file in messages only. Returns: as util_file_read. */
ragd_rc util_fd_read(int fd, const char *path, size_t max_bytes, char **out, size_t *len,
                     ragd_err *err);

/* Writes data to path durably and atomically: path.tmp, fsync, rename, fsync of the directory. */
ragd_rc util_file_write_atomic(const char *path, const void *data, size_t len, ragd_err *err);

/* fsyncs the directory that contains path. Returns: RAGD_OK or RAGD_ERR_IO. */
ragd_rc util_dir_fsync_parent(const char *path, ragd_err *err);

/* Returns: a new string (free with free()) joining dir and name with one '/', or NULL on OOM. */
char *util_path_join(const char *dir, const char *name);

/* Returns: a new copy of s[0..n) (free with free()), or NULL on OOM. */
char *util_strndup(const char *s, size_t n);

/* Returns: a copy of url with the password of its user-info part replaced by "<redacted>"
 * ("postgresql://app:<redacted>@db/x"), and a "password=" parameter's value too; new (free()),
 * or NULL on OOM. A URL without a password is copied as it is. */
char *util_url_redact(const char *url);

/* Returns: 1 when s is a plain lower-case SQL identifier: [a-z_][a-z0-9_]*, 1..63 bytes. */
int util_sql_identifier_valid(const char *s);

#endif
