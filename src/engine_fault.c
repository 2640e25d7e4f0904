/* SPDX-License-Identifier: MIT */
/*
 * engine_fault.c - the engine's write-fault state: when a write to the data dir fails (a full
 * disk, a read-only remount, an I/O error), the engine records what failed and why, keeps serving
 * retrievals from memory, and refuses further writes with that reason until a probe shows the data
 * dir can be written again. Probes are rate-limited (at most one every ENGINE_FAULT_PROBE_MS) and
 * run from requests that need the answer (/health, /metrics, a write), so recovery needs no
 * restart and no operator action beyond freeing space. This file holds the state and the space
 * probe, and the engine's side: what a failed write does (engine_write_failed), what a probe
 * writes (a probe file, then a store flush: sync and the index file), and the check writers make
 * (engine_writes_allowed). It also holds the one test-only hook, RAGD_TEST_WRITE_FAILURE, for test
 * machines that cannot mount a small tmpfs to fill (see engine_fault_injected).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_int.h"
#include "ragd/log.h"
#include "ragd/util.h"

#define ENGINE_FAULT_PROBE_MS 1000.0
#define ENGINE_FAULT_PROBE_FILE ".ragd-write-probe"
#define ENGINE_FAULT_PROBE_BYTES (256u * 1024u)

void engine_fault_init(engine_fault *f)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
}

void engine_fault_destroy(engine_fault *f)
{
    pthread_mutex_destroy(&f->mu);
}

void engine_fault_note(engine_fault *f, const char *what, const char *why)
{
    pthread_mutex_lock(&f->mu);
    int was = f->active;
    f->active = 1;
    f->failures++;
    snprintf(f->reason, sizeof f->reason, "%s: %s", what, why && why[0] ? why : "failed");
    if (!was) f->since = util_unix_time();
    /* the next probe no sooner than one period after the failure */
    f->next_probe_ms = util_now_ms() + ENGINE_FAULT_PROBE_MS;
    pthread_mutex_unlock(&f->mu);
    RAGD_LOG(was ? RAGD_LOG_INFO : RAGD_LOG_WARN, "engine",
             "write to the data dir failed (%s: %s); retrievals are served from memory and writes "
             "are refused until the data dir can be written again", what, why ? why : "");
}

int engine_fault_get(engine_fault *f, char *reason, size_t size, int64_t *since)
{
    pthread_mutex_lock(&f->mu);
    int active = f->active;
    if (reason && size) snprintf(reason, size, "%s", active ? f->reason : "");
    if (since) *since = active ? f->since : 0;
    pthread_mutex_unlock(&f->mu);
    return active;
}

int engine_fault_probe_claim(engine_fault *f)
{
    pthread_mutex_lock(&f->mu);
    double now = util_now_ms();
    int due = f->active && now >= f->next_probe_ms;
    if (due) f->next_probe_ms = now + ENGINE_FAULT_PROBE_MS;
    pthread_mutex_unlock(&f->mu);
    return due;
}

void engine_fault_clear(engine_fault *f)
{
    pthread_mutex_lock(&f->mu);
    int was = f->active;
    int64_t since = f->since;
    f->active = 0;
    f->reason[0] = '\0';
    f->since = 0;
    pthread_mutex_unlock(&f->mu);
    if (was)
        RAGD_LOG(RAGD_LOG_INFO, "engine", "the data dir can be written again (after %lld s); "
                 "writes resume", (long long)(util_unix_time() - since));
}

int engine_fault_injected(const char *what, ragd_err *err)
{
    const char *flag = getenv("RAGD_TEST_WRITE_FAILURE");
    if (flag == NULL || flag[0] == '\0') return 0;
    FILE *fp = fopen(flag, "r");
    if (fp == NULL) return 0;
    char line[256] = "";
    if (fgets(line, sizeof line, fp) == NULL) line[0] = '\0';
    fclose(fp);
    line[strcspn(line, "\r\n")] = '\0';
    /* empty or "all": every write; else a comma-separated list of the writes that fail */
    int hit = line[0] == '\0' || strcmp(line, "all") == 0;
    for (char *save = NULL, *tok = hit ? NULL : strtok_r(line, ", ", &save); tok && !hit;
         tok = strtok_r(NULL, ", ", &save))
        hit = strcmp(tok, what) == 0;
    if (!hit) return 0;
    ragd_err_set(err, RAGD_ERR_STORE, "%s: %s (injected: RAGD_TEST_WRITE_FAILURE)", what,
                 strerror(ENOSPC));
    return 1;
}

ragd_rc engine_fault_space_check(const char *dir, size_t bytes, ragd_err *err)
{
    if (engine_fault_injected("probe", err)) return RAGD_ERR_IO;
    char *path = util_path_join(dir, ENGINE_FAULT_PROBE_FILE);
    if (path == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        int en = errno;
        free(path);
        return ragd_err_set(err, RAGD_ERR_IO, "cannot create a file in %s: %s", dir,
                            strerror(en));
    }
    static const char zeros[16384];
    size_t done = 0;
    int en = 0;
    while (done < bytes && en == 0) {
        size_t n = bytes - done < sizeof zeros ? bytes - done : sizeof zeros;
        ssize_t w = write(fd, zeros, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            en = w < 0 ? errno : ENOSPC;
        else
            done += (size_t)w;
    }
    /* tmpfs and most file systems allocate on write; fsync catches the rest (delayed allocation) */
    if (en == 0 && fsync(fd) != 0) en = errno;
    close(fd);
    unlink(path);
    free(path);
    if (en != 0)
        return ragd_err_set(err, RAGD_ERR_IO, "cannot write %zu bytes in %s: %s", bytes, dir,
                            strerror(en));
    return RAGD_OK;
}

/* ---- the engine's side ------------------------------------------------------------------- */

void engine_write_failed(engine *e, const char *what, const char *why)
{
    engine_fault_note(&e->fault, what, why);
    store_reclaim(e->st, NULL);
}

ragd_rc engine_store_flush(engine *e, ragd_err *err)
{
    if (engine_fault_injected("flush", err)) return RAGD_ERR_STORE;
    return store_flush(e->st, err);
}

ragd_rc engine_store_sync(engine *e, ragd_err *err)
{
    if (engine_fault_injected("flush", err)) return RAGD_ERR_STORE;
    return store_sync(e->st, err);
}

int engine_writes_recover(engine *e)
{
    if (!engine_fault_probe_claim(&e->fault)) return !engine_fault_get(&e->fault, NULL, 0, NULL);
    ragd_err perr = {0};
    /* a file of some size first (the flush alone may need next to no space), then the store's
     * own durable write and its pending index save */
    ragd_rc rc = engine_fault_space_check(e->cfg->data_dir, ENGINE_FAULT_PROBE_BYTES, &perr);
    if (rc == RAGD_OK) rc = engine_store_flush(e, &perr);
    if (rc != RAGD_OK) {
        RAGD_LOG(RAGD_LOG_DEBUG, "engine", "data dir still not writable: %s", perr.msg);
        return 0;
    }
    /* best effort: readers in the way only delay it to a later WAL reset */
    store_reclaim(e->st, NULL);
    engine_fault_clear(&e->fault);
    return 1;
}

ragd_rc engine_writes_allowed(engine *e, ragd_err *err)
{
    if (engine_writes_recover(e)) return RAGD_OK;
    char reason[sizeof e->fault.reason];
    engine_fault_get(&e->fault, reason, sizeof reason, NULL);
    return ragd_err_set(err, RAGD_ERR_UNAVAILABLE, "writes are suspended since a write to the "
                        "data dir failed (%s); retrievals keep answering, and writes resume by "
                        "themselves once the data dir can be written again (see /health)",
                        reason);
}
