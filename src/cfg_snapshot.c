/* SPDX-License-Identifier: MIT */
/*
 * cfg_snapshot.c - immutable configuration snapshots with reference counts: the publication
 * point holds the current one under a mutex (taken only to swap the pointer and count a
 * reference); a snapshot is freed by whoever drops its last reference, the publisher or the
 * last request that used it.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ragd/cfg_snapshot.h"

typedef struct snapshot {
    ragd_cfg cfg; /* first: a const ragd_cfg * handed out is the snapshot's address */
    int refs;     /* atomic */
} snapshot;

struct cfg_live {
    pthread_mutex_t mu;
    snapshot *current; /* holds one reference */
};

static void snapshot_unref(snapshot *s)
{
    if (s && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        cfg_free(&s->cfg);
        free(s);
    }
}

cfg_live *cfg_live_new(const ragd_cfg *boot)
{
    cfg_live *l = calloc(1, sizeof *l);
    snapshot *s = calloc(1, sizeof *s);
    ragd_err err = {0};
    util_buf none = {0};
    /* a deep copy: reload_build against itself changes nothing */
    if (l == NULL || s == NULL ||
        cfg_reload_build(boot, boot, &s->cfg, &none, &none, &err) != RAGD_OK) {
        util_buf_free(&none);
        free(s);
        free(l);
        return NULL;
    }
    util_buf_free(&none);
    s->refs = 1;
    pthread_mutex_init(&l->mu, NULL);
    l->current = s;
    return l;
}

void cfg_live_free(cfg_live *l)
{
    if (l == NULL) return;
    snapshot_unref(l->current);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

const ragd_cfg *cfg_live_acquire(cfg_live *l)
{
    pthread_mutex_lock(&l->mu);
    snapshot *s = l->current;
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_ACQ_REL);
    pthread_mutex_unlock(&l->mu);
    return &s->cfg;
}

void cfg_live_release(const ragd_cfg *cfg)
{
    if (cfg == NULL) return;
    snapshot_unref((snapshot *)(void *)((char *)(uintptr_t)cfg - offsetof(snapshot, cfg)));
}

ragd_rc cfg_live_publish(cfg_live *l, ragd_cfg *next, ragd_err *err)
{
    snapshot *s = calloc(1, sizeof *s);
    if (s == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    s->cfg = *next;
    memset(next, 0, sizeof *next);
    s->refs = 1;
    pthread_mutex_lock(&l->mu);
    snapshot *old = l->current;
    l->current = s;
    pthread_mutex_unlock(&l->mu);
    snapshot_unref(old);
    return RAGD_OK;
}
