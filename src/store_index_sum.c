/* SPDX-License-Identifier: MIT */
/*
 * store_index_sum.c - the vector index file's checksum in the same pass as its I/O: a stdio
 * cookie stream (fopencookie) over a file descriptor that feeds every byte read or written to a
 * digest (SHA-256 through OpenSSL for metas of format 1, XXH3-64 through xxhash's header for
 * format 2). FAISS reads and writes index files through a FILE *, so handing it this stream is
 * enough: a 1M x 1024 index (4 GB) used to be read twice at every start (once to hash, once to
 * load) and SHA-256'd on top; now it is read once, checksummed at memory speed. See
 * src/store_index_int.h for the contract.
 *
 * A write stream can also write around the page cache (store_sum_direct): the bytes are staged
 * in an aligned 1 MiB block and written with O_DIRECT, the file's last partial block through the
 * page cache. Copying an index of 42 MB into the page cache cost ~70 ms of CPU, the direct writes
 * ~10 ms (bench/NOTES.md, session 7), and the page cache is not filled with a file that is read
 * back only at the next start. A file system that refuses O_DIRECT (EINVAL at open or at a
 * write) gets the rest of the file through the page cache: same bytes, same digest.
 */
#include "store_index_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/evp.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#define RAGD_SUM_BUFFER (1024 * 1024) /* stdio buffer of the stream: few, large preads */
#define RAGD_SUM_DIRECT_ALIGN 4096     /* O_DIRECT: address, offset and length multiples of it */
#define RAGD_SUM_DIRECT_BYTES (1024 * 1024) /* the staging block of direct writes */

ssize_t (*store_sum_direct_pwrite)(int, const void *, size_t, off_t) = pwrite;

struct store_sum {
    store_sum_kind kind;
    int fd;
    uint64_t offset; /* next byte of fd to read or write; = bytes digested */
    int failed;      /* an I/O error happened inside the stream */
    int failed_errno; /* errno of that error (stdio and FAISS's exceptions may change errno) */
    EVP_MD_CTX *sha;
    XXH3_state_t *xxh;
    char *buffer; /* the stream's stdio buffer (setvbuf) */
    int dfd;      /* O_DIRECT descriptor of fd's file (owned), -1: writes use fd */
    char *dbuf;   /* aligned staging block of the direct writes (RAGD_SUM_DIRECT_BYTES) */
    size_t dlen;  /* bytes staged in dbuf: they belong at file offset offset - dlen */
    uint64_t direct_bytes; /* bytes written with O_DIRECT so far */
};

static int sum_update(store_sum *s, const void *data, size_t len)
{
    if (len == 0) return 0;
    if (s->kind == RAGD_SUM_SHA256) return EVP_DigestUpdate(s->sha, data, len) == 1 ? 0 : -1;
    return XXH3_64bits_update(s->xxh, data, len) == XXH_OK ? 0 : -1;
}

size_t store_sum_hex_len(store_sum_kind kind)
{
    return kind == RAGD_SUM_SHA256 ? 64 : kind == RAGD_SUM_XXH3 ? 16 : 0;
}

ragd_rc store_sum_new(store_sum_kind kind, int fd, store_sum **out, ragd_err *err)
{
    if (store_sum_hex_len(kind) == 0 || fd < 0 || out == NULL)
        return ragd_err_set(err, RAGD_ERR_INVALID, "store_sum_new: bad arguments");
    store_sum *s = calloc(1, sizeof *s);
    if (s == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    s->kind = kind;
    s->fd = fd;
    s->dfd = -1;
    int ok;
    if (kind == RAGD_SUM_SHA256) {
        s->sha = EVP_MD_CTX_new();
        ok = s->sha != NULL && EVP_DigestInit_ex(s->sha, EVP_sha256(), NULL) == 1;
    } else {
        s->xxh = XXH3_createState(); /* aligned as XXH3 wants, unlike a member of s */
        ok = s->xxh != NULL && XXH3_64bits_reset(s->xxh) == XXH_OK;
    }
    if (!ok) {
        store_sum_free(s);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory starting a checksum");
    }
    *out = s;
    return RAGD_OK;
}

void store_sum_free(store_sum *s)
{
    if (s == NULL) return;
    EVP_MD_CTX_free(s->sha);
    if (s->xxh) XXH3_freeState(s->xxh);
    if (s->dfd >= 0) close(s->dfd);
    free(s->dbuf);
    free(s->buffer);
    free(s);
}

int store_sum_direct(store_sum *s, const char *path)
{
    if (s == NULL || path == NULL || s->dfd >= 0) return 0;
    struct stat a, b;
    int dfd = open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
    if (dfd < 0) return 0; /* EINVAL: no O_DIRECT on this file system */
    /* Only the very file fd writes (path could name another by now). */
    if (fstat(dfd, &a) != 0 || fstat(s->fd, &b) != 0 || a.st_dev != b.st_dev ||
        a.st_ino != b.st_ino || posix_memalign((void **)&s->dbuf, RAGD_SUM_DIRECT_ALIGN,
                                               RAGD_SUM_DIRECT_BYTES) != 0) {
        s->dbuf = NULL;
        close(dfd);
        return 0;
    }
    s->dfd = dfd;
    return 1;
}

uint64_t store_sum_direct_bytes(const store_sum *s)
{
    return s ? s->direct_bytes : 0;
}

/* Writes all of buf at file offset at through fd (the page cache). Returns: 0, or -1 with the
 * stream marked failed. */
static int sum_pwrite_all(store_sum *s, const char *buf, size_t size, uint64_t at)
{
    size_t done = 0;
    while (done < size) {
        ssize_t put = pwrite(s->fd, buf + done, size - done, (off_t)(at + done));
        if (put < 0 && errno == EINTR) continue;
        if (put <= 0) {
            s->failed = 1;
            s->failed_errno = put < 0 ? errno : EIO;
            return -1;
        }
        done += (size_t)put;
    }
    return 0;
}

/* Writes the staged bytes: their whole aligned blocks with O_DIRECT, and what O_DIRECT cannot
 * take (a last partial block when final; everything after a refusal) through the page cache. A
 * refusal (EINVAL: this file system or device does not take these writes; or a short write that
 * left the offset unaligned) turns direct writing off for the rest of the file; any other error
 * fails the stream with its errno (ENOSPC). Returns: 0 or -1. */
static int direct_flush(store_sum *s, int final)
{
    uint64_t at = s->offset - s->dlen;
    size_t aligned = final ? s->dlen & ~(size_t)(RAGD_SUM_DIRECT_ALIGN - 1) : s->dlen;
    size_t done = 0;
    while (s->dfd >= 0 && done < aligned) {
        ssize_t put = store_sum_direct_pwrite(s->dfd, s->dbuf + done, aligned - done,
                                              (off_t)(at + done));
        if (put < 0 && errno == EINTR) continue;
        if (put < 0 && errno == EINVAL) {
            close(s->dfd);
            s->dfd = -1;
            break;
        }
        if (put <= 0) {
            s->failed = 1;
            s->failed_errno = put < 0 ? errno : EIO;
            return -1;
        }
        done += (size_t)put;
        s->direct_bytes += (uint64_t)put;
        if (done % RAGD_SUM_DIRECT_ALIGN != 0) {
            close(s->dfd);
            s->dfd = -1;
        }
    }
    if (sum_pwrite_all(s, s->dbuf + done, s->dlen - done, at + done) != 0) return -1;
    s->dlen = 0;
    return 0;
}

/* cookie_close_function_t of a write stream: the staged bytes written. Returns: 0 or -1. */
static int sum_close(void *cookie)
{
    store_sum *s = cookie;
    if (s->dbuf == NULL || s->failed) return s->failed ? -1 : 0;
    return direct_flush(s, 1);
}

/* cookie_read_function_t: the next bytes of fd, digested. */
static ssize_t sum_read(void *cookie, char *buf, size_t size)
{
    store_sum *s = cookie;
    for (;;) {
        ssize_t got = pread(s->fd, buf, size, (off_t)s->offset);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0 || sum_update(s, buf, (size_t)got) != 0) {
            s->failed = 1;
            s->failed_errno = got < 0 ? errno : EIO;
            return -1;
        }
        s->offset += (uint64_t)got;
        return got;
    }
}

/* cookie_write_function_t: digests and writes all of buf (0 on failure: stdio's error). */
static ssize_t sum_write(void *cookie, const char *buf, size_t size)
{
    store_sum *s = cookie;
    if (s->failed) return 0;
    if (sum_update(s, buf, size) != 0) {
        s->failed = 1;
        s->failed_errno = EIO;
        return 0;
    }
    if (s->dbuf == NULL) {
        if (sum_pwrite_all(s, buf, size, s->offset) != 0) return 0;
        s->offset += size;
        return (ssize_t)size;
    }
    for (size_t done = 0; done < size;) {
        size_t take = size - done < RAGD_SUM_DIRECT_BYTES - s->dlen
                          ? size - done : RAGD_SUM_DIRECT_BYTES - s->dlen;
        memcpy(s->dbuf + s->dlen, buf + done, take);
        s->dlen += take;
        s->offset += take;
        done += take;
        if (s->dlen == RAGD_SUM_DIRECT_BYTES && direct_flush(s, 0) != 0) return 0;
    }
    return (ssize_t)size;
}

FILE *store_sum_stream(store_sum *s, const char *mode)
{
    if (s == NULL || mode == NULL || (mode[0] != 'r' && mode[0] != 'w')) {
        errno = EINVAL;
        return NULL;
    }
    cookie_io_functions_t io = {0};
    if (mode[0] == 'r') {
        io.read = sum_read;
    } else {
        io.write = sum_write;
        io.close = sum_close;
    }
    if (s->buffer == NULL && (s->buffer = malloc(RAGD_SUM_BUFFER)) == NULL) return NULL;
    FILE *f = fopencookie(s, mode[0] == 'r' ? "r" : "w", io);
    if (f != NULL) setvbuf(f, s->buffer, _IOFBF, RAGD_SUM_BUFFER);
    return f;
}

ragd_rc store_sum_drain(store_sum *s, ragd_err *err)
{
    if (s->buffer == NULL && (s->buffer = malloc(RAGD_SUM_BUFFER)) == NULL)
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    for (;;) {
        ssize_t got = sum_read(s, s->buffer, RAGD_SUM_BUFFER);
        if (got < 0)
            return ragd_err_set(err, RAGD_ERR_IO, "cannot read the index file: %s",
                                strerror(s->failed_errno));
        if (got == 0) return RAGD_OK;
    }
}

uint64_t store_sum_bytes(const store_sum *s)
{
    return s ? s->offset : 0;
}

int store_sum_failed(const store_sum *s)
{
    return s == NULL || s->failed;
}

int store_sum_errno(const store_sum *s)
{
    return s != NULL && s->failed ? s->failed_errno : 0;
}

ragd_rc store_sum_hex(store_sum *s, char hex[RAGD_SUM_HEX_MAX], ragd_err *err)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (s->kind == RAGD_SUM_SHA256) {
        if (EVP_DigestFinal_ex(s->sha, digest, &n) != 1 || n != 32)
            return ragd_err_set(err, RAGD_ERR_INTERNAL, "SHA-256 of the index file failed");
    } else {
        XXH64_hash_t h = XXH3_64bits_digest(s->xxh);
        XXH64_canonical_t c; /* big-endian: the hex reads as the number */
        XXH64_canonicalFromHash(&c, h);
        memcpy(digest, c.digest, sizeof c.digest);
        n = sizeof c.digest;
    }
    static const char digits[] = "0123456789abcdef";
    for (unsigned int i = 0; i < n; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[2 * n] = '\0';
    return RAGD_OK;
}
