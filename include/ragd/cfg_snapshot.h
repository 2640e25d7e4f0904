/* SPDX-License-Identifier: MIT */
/*
 * cfg_snapshot.h - the running configuration as immutable, reference-counted snapshots. A request
 * takes the current snapshot when it starts and releases it when it ends; SIGHUP builds a new
 * configuration (cfg_reload_build) and publishes it as the next snapshot. Nothing is written in
 * a snapshot after it is published, so a request sees one consistent configuration (default_k
 * and max_k from the same reload) and no thread reads a value while another writes it.
 */
#ifndef RAGD_CFG_SNAPSHOT_H
#define RAGD_CFG_SNAPSHOT_H

#include "ragd/cfg.h"

typedef struct cfg_live cfg_live;

/* Starts with a deep copy of boot as the first snapshot (boot stays the caller's). Returns: new
 * (free with cfg_live_free once every snapshot is released), or NULL on OOM. */
cfg_live *cfg_live_new(const ragd_cfg *boot);

/* Frees l and its current snapshot. l may be NULL. Snapshots still held are freed by their last
 * release. */
void cfg_live_free(cfg_live *l);

/* Returns: the current snapshot with one more reference: borrowed, immutable, valid until
 * cfg_live_release. Any thread. */
const ragd_cfg *cfg_live_acquire(cfg_live *l);

/* Drops a reference taken by cfg_live_acquire; the last one frees the snapshot. cfg may be NULL. */
void cfg_live_release(const ragd_cfg *cfg);

/* Publishes next as the current snapshot (steals its contents: *next is zeroed). Requests that
 * hold the previous one keep it until they release it. */
ragd_rc cfg_live_publish(cfg_live *l, ragd_cfg *next, ragd_err *err);

#endif
