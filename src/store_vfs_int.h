/* SPDX-License-Identifier: MIT */
/*
 * store_vfs_int.h - the store's SQLite VFS (src/store_vfs.c): the system's default VFS with the
 * WAL file's frame writes gathered, a commit's frames written with a few large writes instead of
 * two system calls per page, and the statement journal's records likewise. Private to the store
 * module.
 */
#ifndef RAGD_STORE_VFS_INT_H
#define RAGD_STORE_VFS_INT_H

#include <stdint.h>

/* Registers the VFS with SQLite once per process (not as the default VFS; SQLite must be free
 * to initialise, i.e. sqlite3_config calls come first). Returns: the VFS name to pass to
 * sqlite3_open_v2 (static, borrowed for the process's life), or NULL when it could not be
 * registered (no default VFS, out of memory): the caller then opens with SQLite's default. */
const char *store_vfs_name(void);

/* The files whose writes the VFS gathers. */
enum {
    RAGD_VFS_WAL = 0,       /* the write-ahead log */
    RAGD_VFS_SUBJOURNAL = 1 /* a transaction's statement journal (a temporary file) */
};

/* Process-wide counts since start for the files of one kind (RAGD_VFS_*): *sqlite_writes the
 * write calls SQLite made on them (a WAL frame is two: its 24-byte header and its page; a
 * statement journal record two: page number and page), *system_writes the writes the VFS passed
 * on to the default VFS for them (each one pwrite). Either pointer may be NULL. For tests and
 * benchmarks. */
void store_vfs_counts(int kind, uint64_t *sqlite_writes, uint64_t *system_writes);

#endif
