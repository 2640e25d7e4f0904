/* SPDX-License-Identifier: MIT */
/*
 * store_vfs.c - the store's SQLite VFS: the process's default VFS ("unix") with one change, the
 * WAL file's writes gathered. SQLite writes a WAL frame as two calls, its 24-byte header and then
 * its page, each a pwrite: an ingest of 12 MB of markdown made ~35,000 of them (two fifths of all
 * its system calls). Here consecutive writes that continue one another are copied into a buffer
 * (RAGD_VFS_WAL_BUFFER bytes) and handed to the default VFS as one write when it is full, when a
 * write does not continue it, before any other operation on the file (read, sync, truncate, size,
 * lock, file control, close) and, what keeps a commit exactly as safe as before, as soon as the
 * page of a commit frame (a frame header whose "database size after commit" field is not zero)
 * is in the buffer. SQLite writes a commit's frames in one call of its WAL code and publishes them
 * to other connections (the -shm index) only after the commit frame's write returns, and it syncs
 * through xSync, which writes the buffer first: every byte reaches the file in the same order as
 * without the VFS, and before anything that could read it or make it durable, so a crash (SIGKILL
 * or power loss) finds the WAL as it could have found it without this VFS. Frames written before a
 * commit (a transaction too large for the page cache spills pages) may wait in the buffer until
 * the next write, read or sync: they belong to no commit yet, and SQLite reads them back through
 * xRead, which writes the buffer first. The buffer is allocated at the first write and freed when
 * a commit has been written, so a connection holds no memory between transactions. Every other
 * file (the database, its -shm index, statement journals) is the default VFS's own file object,
 * untouched. An error writing the buffer is returned by the call that wrote it (SQLITE_FULL on a
 * full disk, as the default VFS reports it) and the buffered bytes are dropped, as a failed write
 * is: SQLite then rolls the transaction back.
 *
 * A transaction's statement journal (SQLite's temporary file holding the pages a statement
 * changed, to undo that statement alone; ~9,800 pwrites of 4 bytes and of a page for the same 12
 * MB ingest) is gathered the same way, without the commit rule: it is deleted when closed and no
 * crash ever reads it, and SQLite reads it back (a statement rolled back) through xRead, which
 * writes the buffer first.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <sqlite3.h>

#include "store_vfs_int.h"

#define RAGD_VFS_NAME "ragd-wal-gather"
#define RAGD_VFS_WAL_BUFFER (64 * 1024) /* 15 frames of 4 KiB pages */
#define RAGD_WAL_FRAME_HEADER 24       /* SQLite's WAL frame header, file format 3007000 */

/* A gathered file (WAL or statement journal): our state, then the default VFS's file object
 * (inner) in the same allocation. */
typedef struct wal_file {
    sqlite3_file base;
    sqlite3_file *inner;
    int kind;           /* RAGD_VFS_WAL or RAGD_VFS_SUBJOURNAL */
    unsigned char *buf; /* sqlite3_malloc'd, RAGD_VFS_WAL_BUFFER bytes, or NULL */
    int len;            /* bytes in buf */
    sqlite3_int64 at;   /* file offset of buf[0] */
    int commit_next;    /* the last write was a commit frame's header: write out after the next */
} wal_file;

/* The wal_file part of the VFS's file size, rounded so that inner stays aligned. */
#define RAGD_WAL_FILE_SIZE ((sizeof(wal_file) + 15) & ~(size_t)15)

static sqlite3_vfs ragd_vfs;
static const char *ragd_vfs_registered;
static uint64_t sqlite_writes_of[2], system_writes_of[2]; /* by kind */

static sqlite3_vfs *inner_vfs(sqlite3_vfs *vfs) { return (sqlite3_vfs *)vfs->pAppData; }

static wal_file *as_wal(sqlite3_file *f) { return (wal_file *)f; }

/* Writes the buffer out (one write of the default VFS). Returns that write's SQLite code; the
 * buffer is empty afterwards either way. release frees it too. */
static int wal_flush(wal_file *w, int release)
{
    int rc = SQLITE_OK;
    if (w->len > 0) {
        rc = w->inner->pMethods->xWrite(w->inner, w->buf, w->len, w->at);
        __atomic_add_fetch(&system_writes_of[w->kind], 1, __ATOMIC_RELAXED);
        w->len = 0;
    }
    if (release) {
        sqlite3_free(w->buf);
        w->buf = NULL;
    }
    return rc;
}

/* Reads the 4-byte big-endian "database size after commit" of a frame header. */
static uint32_t frame_commit_size(const unsigned char *h)
{
    return (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | (uint32_t)h[7];
}

static int wal_write(sqlite3_file *f, const void *data, int amount, sqlite3_int64 offset)
{
    wal_file *w = as_wal(f);
    __atomic_add_fetch(&sqlite_writes_of[w->kind], 1, __ATOMIC_RELAXED);
    int commit_ends = w->commit_next;
    w->commit_next = w->kind == RAGD_VFS_WAL && amount == RAGD_WAL_FRAME_HEADER &&
                     frame_commit_size(data) != 0;
    int rc = SQLITE_OK;
    /* the buffer holds one run of bytes: a write elsewhere, or one that would overflow it,
     * writes it out first */
    if (w->len > 0 && (offset != w->at + w->len || amount > RAGD_VFS_WAL_BUFFER - w->len))
        rc = wal_flush(w, 0);
    if (rc != SQLITE_OK) return rc;
    if (w->buf == NULL && amount <= RAGD_VFS_WAL_BUFFER)
        w->buf = sqlite3_malloc(RAGD_VFS_WAL_BUFFER); /* NULL: written through, as before */
    if (w->buf == NULL || amount > RAGD_VFS_WAL_BUFFER) {
        rc = w->inner->pMethods->xWrite(w->inner, data, amount, offset);
        __atomic_add_fetch(&system_writes_of[w->kind], 1, __ATOMIC_RELAXED);
    } else {
        if (w->len == 0) w->at = offset;
        memcpy(w->buf + w->len, data, (size_t)amount);
        w->len += amount;
    }
    /* a commit frame's page: the commit is written before SQLite publishes it */
    if (rc == SQLITE_OK && commit_ends) rc = wal_flush(w, 1);
    return rc;
}

static int wal_close(sqlite3_file *f)
{
    wal_file *w = as_wal(f);
    int rc = wal_flush(w, 1);
    int closed = w->inner->pMethods->xClose(w->inner);
    return rc != SQLITE_OK ? rc : closed;
}

/* Every other operation on the file writes the buffer out first, then is the default VFS's. */
#define RAGD_AFTER_FLUSH(call)                                                                     \
    do {                                                                                           \
        wal_file *w = as_wal(f);                                                                   \
        int rc = wal_flush(w, 0);                                                                  \
        return rc != SQLITE_OK ? rc : w->inner->pMethods->call;                                    \
    } while (0)

static int wal_read(sqlite3_file *f, void *data, int amount, sqlite3_int64 offset)
{
    RAGD_AFTER_FLUSH(xRead(w->inner, data, amount, offset));
}

static int wal_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    RAGD_AFTER_FLUSH(xTruncate(w->inner, size));
}

static int wal_sync(sqlite3_file *f, int flags) { RAGD_AFTER_FLUSH(xSync(w->inner, flags)); }

static int wal_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    RAGD_AFTER_FLUSH(xFileSize(w->inner, size));
}

static int wal_lock(sqlite3_file *f, int level) { RAGD_AFTER_FLUSH(xLock(w->inner, level)); }

static int wal_unlock(sqlite3_file *f, int level) { RAGD_AFTER_FLUSH(xUnlock(w->inner, level)); }

static int wal_check_reserved(sqlite3_file *f, int *out)
{
    RAGD_AFTER_FLUSH(xCheckReservedLock(w->inner, out));
}

static int wal_file_control(sqlite3_file *f, int op, void *arg)
{
    RAGD_AFTER_FLUSH(xFileControl(w->inner, op, arg));
}

/* Pure queries (SQLite asks them between frame writes when it pads to a sector): no write-out. */
static int wal_sector_size(sqlite3_file *f)
{
    wal_file *w = as_wal(f);
    return w->inner->pMethods->xSectorSize(w->inner);
}

static int wal_device_characteristics(sqlite3_file *f)
{
    wal_file *w = as_wal(f);
    return w->inner->pMethods->xDeviceCharacteristics(w->inner);
}

/* Version 1: a WAL file is never memory-mapped and has no shared-memory index of its own, so
 * SQLite calls none of the later methods on it. */
static const sqlite3_io_methods wal_methods = {
    1,
    wal_close,
    wal_read,
    wal_write,
    wal_truncate,
    wal_sync,
    wal_file_size,
    wal_lock,
    wal_unlock,
    wal_check_reserved,
    wal_file_control,
    wal_sector_size,
    wal_device_characteristics,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
};

static int vfs_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    sqlite3_vfs *inner = inner_vfs(vfs);
    /* anything but a WAL file or a statement journal is the default VFS's own object, in the
     * space SQLite gave us */
    if (!(flags & (SQLITE_OPEN_WAL | SQLITE_OPEN_SUBJOURNAL)))
        return inner->xOpen(inner, name, f, flags, out_flags);
    wal_file *w = as_wal(f);
    memset(w, 0, sizeof *w);
    w->kind = flags & SQLITE_OPEN_WAL ? RAGD_VFS_WAL : RAGD_VFS_SUBJOURNAL;
    w->inner = (sqlite3_file *)((char *)f + RAGD_WAL_FILE_SIZE);
    memset(w->inner, 0, (size_t)inner->szOsFile);
    int rc = inner->xOpen(inner, name, w->inner, flags, out_flags);
    if (rc != SQLITE_OK) {
        if (w->inner->pMethods != NULL) w->inner->pMethods->xClose(w->inner);
        w->base.pMethods = NULL; /* SQLite then calls no xClose on it */
        return rc;
    }
    w->base.pMethods = &wal_methods;
    return SQLITE_OK;
}

/* The rest of the VFS is the default one's. */
static int vfs_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    return inner_vfs(vfs)->xDelete(inner_vfs(vfs), name, sync_dir);
}

static int vfs_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    return inner_vfs(vfs)->xAccess(inner_vfs(vfs), name, flags, out);
}

static int vfs_full_pathname(sqlite3_vfs *vfs, const char *name, int size, char *out)
{
    return inner_vfs(vfs)->xFullPathname(inner_vfs(vfs), name, size, out);
}

static void *vfs_dl_open(sqlite3_vfs *vfs, const char *name)
{
    return inner_vfs(vfs)->xDlOpen(inner_vfs(vfs), name);
}

static void vfs_dl_error(sqlite3_vfs *vfs, int size, char *out)
{
    inner_vfs(vfs)->xDlError(inner_vfs(vfs), size, out);
}

static void (*vfs_dl_sym(sqlite3_vfs *vfs, void *handle, const char *symbol))(void)
{
    return inner_vfs(vfs)->xDlSym(inner_vfs(vfs), handle, symbol);
}

static void vfs_dl_close(sqlite3_vfs *vfs, void *handle)
{
    inner_vfs(vfs)->xDlClose(inner_vfs(vfs), handle);
}

static int vfs_randomness(sqlite3_vfs *vfs, int size, char *out)
{
    return inner_vfs(vfs)->xRandomness(inner_vfs(vfs), size, out);
}

static int vfs_sleep(sqlite3_vfs *vfs, int microseconds)
{
    return inner_vfs(vfs)->xSleep(inner_vfs(vfs), microseconds);
}

static int vfs_current_time(sqlite3_vfs *vfs, double *out)
{
    return inner_vfs(vfs)->xCurrentTime(inner_vfs(vfs), out);
}

static int vfs_get_last_error(sqlite3_vfs *vfs, int size, char *out)
{
    return inner_vfs(vfs)->xGetLastError(inner_vfs(vfs), size, out);
}

static int vfs_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    return inner_vfs(vfs)->xCurrentTimeInt64(inner_vfs(vfs), out);
}

static void vfs_register(void)
{
    sqlite3_vfs *inner = sqlite3_vfs_find(NULL);
    /* the version-2 methods are forwarded; an older default VFS keeps SQLite's own */
    if (inner == NULL || inner->iVersion < 2 || inner->xCurrentTimeInt64 == NULL) return;
    ragd_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)RAGD_WAL_FILE_SIZE + inner->szOsFile,
        .mxPathname = inner->mxPathname,
        .zName = RAGD_VFS_NAME,
        .pAppData = inner,
        .xOpen = vfs_open,
        .xDelete = vfs_delete,
        .xAccess = vfs_access,
        .xFullPathname = vfs_full_pathname,
        .xDlOpen = vfs_dl_open,
        .xDlError = vfs_dl_error,
        .xDlSym = vfs_dl_sym,
        .xDlClose = vfs_dl_close,
        .xRandomness = vfs_randomness,
        .xSleep = vfs_sleep,
        .xCurrentTime = vfs_current_time,
        .xGetLastError = vfs_get_last_error,
        .xCurrentTimeInt64 = vfs_current_time_int64,
    };
    if (sqlite3_vfs_register(&ragd_vfs, 0) == SQLITE_OK) ragd_vfs_registered = RAGD_VFS_NAME;
}

const char *store_vfs_name(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, vfs_register);
    return ragd_vfs_registered;
}

void store_vfs_counts(int kind, uint64_t *sqlite_writes, uint64_t *system_writes)
{
    int k = kind == RAGD_VFS_WAL ? RAGD_VFS_WAL : RAGD_VFS_SUBJOURNAL;
    if (sqlite_writes != NULL)
        *sqlite_writes = __atomic_load_n(&sqlite_writes_of[k], __ATOMIC_RELAXED);
    if (system_writes != NULL)
        *system_writes = __atomic_load_n(&system_writes_of[k], __ATOMIC_RELAXED);
}
