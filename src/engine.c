/* SPDX-License-Identifier: MIT */
/*
 * engine.c - the RAG engine for one data dir: the data-dir lock, opening the store (the backend
 * [store] vector_backend names, through the store interface) and the embedder, closing, and
 * status. The write path is in src/engine_ingest.c, the read path in src/engine_retrieve.c,
 * pushed documents in src/engine_docs.c; HTTP and CLI are thin layers over them.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine_int.h"
#include "ragd/log.h"
#include "ragd/util.h"

#define LOCK_FILE "ragd.lock"

/* ---- data-dir lock ----------------------------------------------------------------------- */

int engine_lock_owner(const char *data_dir, long *pid, char *listen, size_t listen_size)
{
    *pid = 0;
    if (listen_size) listen[0] = '\0';
    char *path = util_path_join(data_dir, LOCK_FILE);
    if (path == NULL) return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0) return 0;
    int held = 0;
    if (flock(fd, LOCK_SH | LOCK_NB) != 0) {
        held = errno == EWOULDBLOCK;
    } else {
        flock(fd, LOCK_UN);
    }
    char text[256];
    ssize_t n = held ? read(fd, text, sizeof text - 1) : 0;
    close(fd);
    if (n > 0) {
        text[n] = '\0';
        char *p = strstr(text, "pid=");
        if (p) *pid = strtol(p + 4, NULL, 10);
        p = strstr(text, "listen=");
        if (p && listen_size) {
            p += 7;
            size_t k = strcspn(p, "\n");
            if (k >= listen_size) k = listen_size - 1;
            memcpy(listen, p, k);
            listen[k] = '\0';
        }
    }
    return held;
}

static void lock_write(int fd, const char *listen)
{
    char text[256];
    int n = snprintf(text, sizeof text, "pid=%ld\n%s%s%s", (long)getpid(),
                     listen ? "listen=" : "", listen ? listen : "", listen ? "\n" : "");
    if (ftruncate(fd, 0) == 0 && n > 0) {
        ssize_t w = pwrite(fd, text, (size_t)n, 0);
        (void)w;
    }
}

static ragd_rc lock_take(engine *e, const char *data_dir, ragd_err *err)
{
    char *path = util_path_join(data_dir, LOCK_FILE);
    if (path == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        int en = errno;
        ragd_err_set(err, RAGD_ERR_IO, "cannot open lock file %s: %s", path, strerror(en));
        free(path);
        return RAGD_ERR_IO;
    }
    free(path);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int en = errno;
        close(fd);
        if (en != EWOULDBLOCK)
            return ragd_err_set(err, RAGD_ERR_IO, "cannot lock data dir %s: %s", data_dir,
                                strerror(en));
        long pid = 0;
        char listen[128];
        engine_lock_owner(data_dir, &pid, listen, sizeof listen);
        return ragd_err_set(err, RAGD_ERR_LOCKED,
                            "data dir %s is in use by another ragd process (pid %ld%s%s); "
                            "stop it, or send the work to it over HTTP",
                            data_dir, pid, listen[0] ? ", serving " : "", listen);
    }
    lock_write(fd, NULL);
    e->lock_fd = fd;
    return RAGD_OK;
}

void engine_listen_note(engine *e, const char *host, int port)
{
    if (e == NULL || e->lock_fd < 0) return;
    char listen[128];
    int v6 = strchr(host, ':') != NULL;
    snprintf(listen, sizeof listen, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
    lock_write(e->lock_fd, listen);
}

/* ---- open / close ------------------------------------------------------------------------- */

ragd_rc engine_open(const ragd_cfg *cfg, unsigned flags, engine **out, ragd_err *err)
{
    int readonly = (flags & RAGD_ENGINE_READONLY) != 0;
    engine *e = calloc(1, sizeof *e);
    if (e == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    e->cfg = cfg;
    e->readonly = readonly;
    e->lock_fd = -1;
    e->last_ingest_ok = 1;
    engine_fault_init(&e->fault);
    /* Writers first: glibc's default prefers readers, and a steady stream of retrievals would
     * otherwise hold an ingest's commit back indefinitely. */
    pthread_rwlockattr_t rwattr;
    pthread_rwlockattr_init(&rwattr);
    pthread_rwlockattr_setkind_np(&rwattr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&e->rw, &rwattr);
    pthread_rwlockattr_destroy(&rwattr);
    pthread_mutex_init(&e->ingest_mu, NULL);
    pthread_mutex_init(&e->write_mu, NULL);
    pthread_mutex_init(&e->status_mu, NULL);
    atomic_init(&e->ingest_running, 0);
    atomic_init(&e->cancelled, 0);
    atomic_init(&e->retrievals, 0);
    e->cpus = util_cpus_usable();
    engine_cpu_init(&e->cpu);
    engine_sides_init(&e->sides, RAGD_SIDES_THREADS_MAX);
    atomic_init(&e->writes, 0);

    ragd_rc rc = RAGD_OK;
    if (!readonly) rc = util_mkdir_p(cfg->data_dir, err);
    if (rc == RAGD_OK && !readonly) rc = lock_take(e, cfg->data_dir, err);
    if (rc == RAGD_OK) rc = store_open(cfg, readonly, &e->st, err);
    if (rc == RAGD_OK) rc = embed_provider_new(cfg, &e->embedder, err);
    if (rc == RAGD_OK)
        rc = cache_query_new(cfg, e->embedder->ops->name, e->embedder->model, e->embedder->dims,
                             &e->cache, err);
    if (rc == RAGD_OK) rc = retrieve_reranker_new(cfg, &e->reranker, err);
    if (rc == RAGD_OK) {
        store_stats st = {0};
        rc = store_stats_get(e->st, &st, err);
        /* A read-only open of an empty store must not try to record the model. */
        if (rc == RAGD_OK && !(readonly && st.chunks == 0)) {
            ragd_err merr = {0};
            rc = store_model_check(e->st, e->embedder->model, e->embedder->dims, &merr);
            if (rc == RAGD_ERR_MODEL_MISMATCH && (flags & RAGD_ENGINE_RESETTING)) {
                /* The store is about to be emptied; until then nothing may be written to it. */
                RAGD_LOG(RAGD_LOG_INFO, "engine", "%s; proceeding because of --reset", merr.msg);
                e->model_pending = 1;
                rc = RAGD_OK;
            } else if (rc != RAGD_OK) {
                ragd_err_set(err, rc, "%s", merr.msg);
            }
        }
    }
    if (rc == RAGD_OK)
        rc = store_vectors_open(e->st, e->embedder->model, e->embedder->dims, e->model_pending,
                                err);
    if (rc == RAGD_OK && !readonly && !e->model_pending) {
        /* The store opened (its data is intact); whether the data dir takes writes is another
         * matter: a flush now (the index a rebuild left unsaved, a durable write) tells. If it
         * fails (a full disk), ragd starts anyway, serving from memory with writes refused,
         * and recovers by itself (engine_fault.c). */
        ragd_err ferr = {0};
        if (engine_store_flush(e, &ferr) != RAGD_OK)
            engine_write_failed(e, "writing to the data dir at start", ferr.msg);
    }
    if (rc != RAGD_OK) {
        engine_close(e);
        return rc;
    }
    *out = e;
    return RAGD_OK;
}

void engine_close(engine *e)
{
    if (e == NULL) return;
    engine_sides_destroy(&e->sides); /* no retrieval runs now: the helpers are idle */
    store_close(e->st); /* saves what the backend keeps (the faiss index file) */
    cache_query_free(e->cache);
    retrieve_reranker_free(e->reranker);
    embed_provider_free(e->embedder);
    if (e->lock_fd >= 0) {
        /* The file stays (unlinking would race with another process locking it); emptying it
         * says nobody serves here. */
        if (ftruncate(e->lock_fd, 0) != 0) { /* nothing useful to do */ }
        close(e->lock_fd);
    }
    pthread_rwlock_destroy(&e->rw);
    pthread_mutex_destroy(&e->ingest_mu);
    pthread_mutex_destroy(&e->write_mu);
    pthread_mutex_destroy(&e->status_mu);
    engine_fault_destroy(&e->fault);
    engine_cpu_destroy(&e->cpu);
    free(e);
}

void engine_write_lock(engine *e)
{
    pthread_rwlock_wrlock(&e->rw);
}

void engine_write_unlock(engine *e)
{
    atomic_fetch_add(&e->writes, 1);
    pthread_rwlock_unlock(&e->rw);
}

/* ---- status ------------------------------------------------------------------------------- */

ragd_rc engine_stats_get(engine *e, engine_stats *out, ragd_err *err)
{
    engine_stats s = {0};
    store_stats st = {0};
    /* A write fault ends when a probe succeeds; /health and /metrics run a due one, unless a
     * writer holds the turn (its own write will tell). */
    if (!e->readonly && engine_fault_get(&e->fault, NULL, 0, NULL) &&
        pthread_mutex_trylock(&e->write_mu) == 0) {
        engine_writes_recover(e);
        pthread_mutex_unlock(&e->write_mu);
    }
    s.write_fault = engine_fault_get(&e->fault, s.write_error, sizeof s.write_error,
                                     &s.write_fault_since);
    pthread_rwlock_rdlock(&e->rw);
    ragd_rc rc = store_stats_get(e->st, &st, err);
    pthread_rwlock_unlock(&e->rw);
    if (rc != RAGD_OK) return rc;
    s.documents = st.documents;
    s.chunks = st.chunks;
    s.embeddings = st.embeddings;
    s.index_vectors = st.vectors;
    s.index_bytes = st.vector_bytes;
    s.index_consistent = s.index_vectors == (size_t)s.chunks;
    s.embed_provider = e->embedder->ops->name;
    s.embed_model = e->embedder->model;
    s.embed_dims = e->embedder->dims;
    s.ingest_running = atomic_load(&e->ingest_running);
    embed_counters_get(e->embedder, &s.embed);
    cache_stats_get(e->cache, &s.cache);
    retrieve_reranker_stats(e->reranker, &s.rerank);
    pthread_mutex_lock(&e->status_mu);
    s.last_ingest_at = e->last_ingest_at;
    s.last_ingest_ok = e->last_ingest_ok;
    pthread_mutex_unlock(&e->status_mu);
    *out = s;
    return RAGD_OK;
}

store *engine_store_get(engine *e)
{
    return e->st;
}
