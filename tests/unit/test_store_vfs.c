/* SPDX-License-Identifier: MIT */
/*
 * test_store_vfs.c - the store's SQLite VFS (src/store_vfs.c): the WAL's writes are gathered into
 * few system writes; a commit is in the file when COMMIT returns (another connection, through
 * SQLite's default VFS, reads it at once; a SIGKILL right after loses nothing); pages spilled
 * before a commit are read back correctly; the database it produces is byte for byte the one the
 * default VFS produces; a write error reaches the statement that caused it; a statement journal's
 * writes are gathered too and a failed statement is undone from it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_support.h"

#include "../../src/store_vfs_int.h"

enum { BLOB = 3000 };

/* Opens path through vfs (NULL: SQLite's default) in WAL mode, synchronous=NORMAL, as the store
 * does. Returns: a new connection (sqlite3_close). */
static sqlite3 *db_open(const char *path, const char *vfs)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs),
                     SQLITE_OK);
    assert_int_equal(sqlite3_busy_timeout(db, 10000), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                                  "CREATE TABLE IF NOT EXISTS t(i INTEGER PRIMARY KEY, b BLOB)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    return db;
}

/* Inserts rows first..first+n-1, each a BLOB-byte blob derived from its key, in one transaction.
 * Returns: the SQLite code of the COMMIT (or of the first failing step). */
static int rows_insert(sqlite3 *db, int first, int n)
{
    int code = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    if (code != SQLITE_OK) return code;
    sqlite3_stmt *st = NULL;
    code = sqlite3_prepare_v2(db, "INSERT INTO t(i, b) VALUES (?1, ?2)", -1, &st, NULL);
    static unsigned char blob[BLOB];
    for (int i = first; code == SQLITE_OK && i < first + n; i++) {
        for (int j = 0; j < BLOB; j++) blob[j] = (unsigned char)(i * 31 + j * 7);
        sqlite3_bind_int(st, 1, i);
        sqlite3_bind_blob(st, 2, blob, BLOB, SQLITE_STATIC);
        code = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (code != SQLITE_OK) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return code;
    }
    return sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
}

/* Returns: how many rows t holds whose blob is exactly what rows_insert wrote for its key;
 * -1 when the query fails. */
static int rows_intact(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT i, b FROM t", -1, &st, NULL) != SQLITE_OK) return -1;
    int good = 0, code;
    while ((code = sqlite3_step(st)) == SQLITE_ROW) {
        int i = sqlite3_column_int(st, 0);
        const unsigned char *b = sqlite3_column_blob(st, 1);
        int ok = sqlite3_column_bytes(st, 1) == BLOB;
        for (int j = 0; ok && j < BLOB; j++) ok = b[j] == (unsigned char)(i * 31 + j * 7);
        good += ok;
    }
    sqlite3_finalize(st);
    return code == SQLITE_DONE ? good : -1;
}

/* Returns: 1 when PRAGMA integrity_check says "ok". */
static int integrity_ok(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK) return 0;
    int ok = sqlite3_step(st) == SQLITE_ROW &&
             strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
    sqlite3_finalize(st);
    return ok;
}

/* Makes a scratch directory for one test (dir) and the database path in it (path). */
static void scratch_make(char dir[512], char path[600], const char *name)
{
    assert_int_equal(test_tmpdir_make(dir, 512, name), 0);
    snprintf(path, 600, "%s/db.sqlite3", dir);
}

static void test_wal_writes_gathered(void **state)
{
    (void)state;
    const char *vfs = store_vfs_name();
    assert_non_null(vfs);
    char dir[512], path[600];
    scratch_make(dir, path, "vfs-gather");
    sqlite3 *db = db_open(path, vfs);
    uint64_t calls0, writes0, calls1, writes1;
    store_vfs_counts(RAGD_VFS_WAL, &calls0, &writes0);
    assert_int_equal(rows_insert(db, 0, 400), SQLITE_OK); /* ~300 pages: ~600 write calls */
    store_vfs_counts(RAGD_VFS_WAL, &calls1, &writes1);
    assert_true(calls1 - calls0 >= 600);
    /* 64 KiB a write: at most ~1/30 of the calls (plus the WAL header's and the commit's) */
    assert_true(writes1 - writes0 <= (calls1 - calls0) / 20);
    assert_true(writes1 - writes0 >= 1);
    assert_int_equal(rows_intact(db), 400);
    assert_true(integrity_ok(db));
    sqlite3_close(db);
    assert_int_equal(test_tree_remove(dir), 0);
}

static void test_commit_visible_at_once(void **state)
{
    (void)state;
    char dir[512], path[600];
    scratch_make(dir, path, "vfs-visible");
    sqlite3 *writer = db_open(path, store_vfs_name());
    sqlite3 *reader = db_open(path, NULL); /* SQLite's own VFS: reads the WAL file itself */
    int total = 0;
    for (int round = 0; round < 40; round++) {
        int n = 1 + (round * 7) % 23; /* 1..23 rows: commits of a few to ~20 frames */
        assert_int_equal(rows_insert(writer, total, n), SQLITE_OK);
        total += n;
        assert_int_equal(rows_intact(reader), total);
    }
    assert_true(integrity_ok(reader));
    sqlite3_close(reader);
    sqlite3_close(writer);
    assert_int_equal(test_tree_remove(dir), 0);
}

static void test_spilled_pages_read_back(void **state)
{
    (void)state;
    char dir[512], path[600];
    scratch_make(dir, path, "vfs-spill");
    sqlite3 *db = db_open(path, store_vfs_name());
    /* a 10-page cache: the transaction spills frames to the WAL long before its commit and
     * reads them back, and its updates rewrite frames already written */
    assert_int_equal(sqlite3_exec(db, "PRAGMA cache_size = 10; PRAGMA cache_spill = 1", NULL,
                                  NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n "
                                  "WHERE x < 799) INSERT INTO t(i, b) SELECT x, zeroblob(900) "
                                  "FROM n",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE t SET b = randomblob(700) WHERE i % 3 = 0", NULL,
                                  NULL, NULL),
                     SQLITE_OK);
    /* keys in random order: each insert reads a random leaf, often one spilled moments ago */
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE u(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID;"
                                  "WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n "
                                  "WHERE x < 2999) INSERT INTO u(k, v) SELECT randomblob(16), "
                                  "zeroblob(200) FROM n",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3 *reader = db_open(path, NULL);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(reader,
                                        "SELECT count(*), sum(length(b) = 700), "
                                        "sum(length(b) = 900) FROM t",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 800);
    assert_int_equal(sqlite3_column_int(st, 1), 267);
    assert_int_equal(sqlite3_column_int(st, 2), 533);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(reader, "SELECT count(*), sum(length(v)) FROM u", -1, &st,
                                        NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 3000);
    assert_int_equal(sqlite3_column_int(st, 1), 3000 * 200);
    sqlite3_finalize(st);
    assert_true(integrity_ok(reader));
    sqlite3_close(reader);
    sqlite3_close(db);
    assert_int_equal(test_tree_remove(dir), 0);
}

/* Runs the same commits through vfs into dir/name, checkpoints and closes.
 * Returns: the database file's bytes (malloc'd, caller frees), *size their count. */
static unsigned char *workload_bytes(const char *dir, const char *name, const char *vfs,
                                     long *size)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    sqlite3 *db = db_open(path, vfs);
    for (int i = 0; i < 12; i++) assert_int_equal(rows_insert(db, i * 50, 10 + i * 3), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DELETE FROM t WHERE i % 5 = 1", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    *size = ftell(fp);
    rewind(fp);
    unsigned char *bytes = malloc((size_t)*size);
    assert_non_null(bytes);
    assert_int_equal(fread(bytes, 1, (size_t)*size, fp), (size_t)*size);
    fclose(fp);
    return bytes;
}

static void test_same_database_as_default_vfs(void **state)
{
    (void)state;
    char dir[512];
    assert_int_equal(test_tmpdir_make(dir, sizeof dir, "vfs-same"), 0);
    long size_a = 0, size_b = 0;
    unsigned char *a = workload_bytes(dir, "default.sqlite3", NULL, &size_a);
    unsigned char *b = workload_bytes(dir, "gathered.sqlite3", store_vfs_name(), &size_b);
    assert_true(size_a > 100 * 1024);
    assert_int_equal(size_a, size_b);
    assert_memory_equal(a, b, (size_t)size_a);
    free(a);
    free(b);
    assert_int_equal(test_tree_remove(dir), 0);
}

static void test_sigkill_keeps_every_commit(void **state)
{
    (void)state;
    char dir[512], path[600];
    scratch_make(dir, path, "vfs-kill");
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        sqlite3 *db = db_open(path, store_vfs_name());
        /* commits of 1..9 rows, each acknowledged once COMMIT returned, until killed */
        for (int first = 0, n = 1;; first += n, n = n % 9 + 1) {
            if (rows_insert(db, first, n) != SQLITE_OK) _exit(3);
            int acked = first + n;
            if (write(fds[1], &acked, sizeof acked) != (ssize_t)sizeof acked) _exit(4);
        }
    }
    close(fds[1]);
    int acked = 0, got;
    while (acked < 300 && read(fds[0], &got, sizeof got) == (ssize_t)sizeof got) acked = got;
    kill(pid, SIGKILL);
    /* commits acknowledged after the ones counted so far are found too */
    while (read(fds[0], &got, sizeof got) == (ssize_t)sizeof got) acked = got;
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    close(fds[0]);
    assert_true(acked >= 300);
    sqlite3 *db = db_open(path, NULL);
    int intact = rows_intact(db);
    /* every acknowledged commit, and at most the one being written when the signal came */
    assert_true(intact >= acked);
    assert_true(intact <= acked + 9);
    assert_true(integrity_ok(db));
    sqlite3_close(db);
    assert_int_equal(test_tree_remove(dir), 0);
}

static void test_write_error_reaches_commit(void **state)
{
    (void)state;
    char dir[512], path[600];
    scratch_make(dir, path, "vfs-error");
    sqlite3 *db = db_open(path, store_vfs_name());
    assert_int_equal(rows_insert(db, 0, 20), SQLITE_OK);
    sqlite3_close(db);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* files may not grow past 512 KiB: the WAL write of a 1 MB commit fails (EFBIG) */
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = {512 * 1024, 512 * 1024};
        if (setrlimit(RLIMIT_FSIZE, &lim) != 0) _exit(5);
        sqlite3 *child = db_open(path, store_vfs_name());
        int code = rows_insert(child, 1000, 350);
        if (code == SQLITE_OK) _exit(6); /* the error was lost: the commit "succeeded" */
        if (rows_intact(child) != 20) _exit(7);
        sqlite3_close(child);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    db = db_open(path, NULL);
    assert_int_equal(rows_intact(db), 20);
    assert_true(integrity_ok(db));
    assert_int_equal(rows_insert(db, 1000, 5), SQLITE_OK);
    assert_int_equal(rows_intact(db), 25);
    sqlite3_close(db);
    assert_int_equal(test_tree_remove(dir), 0);
}

static void test_statement_journal_gathered_and_read_back(void **state)
{
    (void)state;
    char dir[512], path[600];
    scratch_make(dir, path, "vfs-stmt");
    sqlite3 *db = db_open(path, store_vfs_name());
    assert_int_equal(rows_insert(db, 0, 600), SQLITE_OK);
    uint64_t calls0, writes0, calls1, writes1;
    store_vfs_counts(RAGD_VFS_SUBJOURNAL, &calls0, &writes0);
    /* in a transaction that already changed the database, a statement that rewrites every row
     * and then fails on its last one (key 599 -> 0 exists): SQLite journals the ~450 pages it
     * changed in the statement journal (a file past 64 KiB) and undoes them from it */
    assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO t(i, b) VALUES (100000, x'00')", NULL, NULL,
                                  NULL),
                     SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db,
                                      "UPDATE t SET b = zeroblob(3100), i = CASE WHEN i = 599 "
                                      "THEN 0 ELSE i END WHERE i < 100000",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
    assert_int_equal(sqlite3_extended_errcode(db), SQLITE_CONSTRAINT_PRIMARYKEY);
    assert_int_equal(sqlite3_exec(db, "DELETE FROM t WHERE i = 100000", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    store_vfs_counts(RAGD_VFS_SUBJOURNAL, &calls1, &writes1);
    assert_true(calls1 - calls0 >= 200);
    assert_true(writes1 - writes0 <= (calls1 - calls0) / 10);
    sqlite3 *reader = db_open(path, NULL);
    assert_int_equal(rows_intact(reader), 600); /* every page restored as it was */
    assert_true(integrity_ok(reader));
    sqlite3_close(reader);
    sqlite3_close(db);
    assert_int_equal(test_tree_remove(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wal_writes_gathered),
        cmocka_unit_test(test_commit_visible_at_once),
        cmocka_unit_test(test_spilled_pages_read_back),
        cmocka_unit_test(test_same_database_as_default_vfs),
        cmocka_unit_test(test_sigkill_keeps_every_commit),
        cmocka_unit_test(test_write_error_reaches_commit),
        cmocka_unit_test(test_statement_journal_gathered_and_read_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
