/* SPDX-License-Identifier: MIT */
/*
 * store_index.c - the vector index: a FAISS IndexIDMap2 over an IndexFlatIP, keyed by chunk id,
 * searched by inner product (cosine, since vectors arrive L2-normalised). It is reached only
 * through the official FAISS C API (src/store_faiss_capi.cpp supplies it on Debian 12), and every
 * FAISS failure becomes RAGD_ERR_INDEX with FAISS's own message. On disk an index is two files:
 * `path`, what faiss_write_index writes, and `path.meta`, a small JSON object with the format,
 * the store generation it matches, the vector count, the dimensions and a checksum of `path`
 * (format 2: XXH3-64; format 1, written by older ragd and still read: SHA-256). The checksum is
 * taken in the same pass as FAISS writes or reads the file (src/store_index_sum.c): a start reads
 * the index once.
 * The index file is written first and the meta second, each atomically, so a crash between them
 * leaves a meta that does not match and the next start rebuilds from SQLite. Loading trusts
 * nothing: it checks the meta, the file's size and layout against the meta, the checksum, and
 * what FAISS read, so a truncated, flipped or hostile file fails cleanly instead of crashing or
 * making FAISS allocate absurd sizes. A flat file's layout (every length FAISS will read) is
 * checked before FAISS parses it and its checksum as FAISS reads it; any other type's sizes are
 * known only to FAISS, so its checksum is verified in a pass before FAISS parses it.
 *
 * The index type is a FAISS factory string ([store] index_factory). "Flat" (the default) is the
 * exact IndexFlatIP above, whose removals are real. "HNSW<M>[,Flat]" builds an IndexHNSWFlat
 * (approximate, fast at large sizes) inside the same IndexIDMap2; HNSW cannot remove vectors, so
 * a removal marks the vector's position in the id map as a tombstone and searches pass FAISS an
 * id selector that skips tombstones while walking the graph (k live results, never fewer than
 * exact filtering would give). Tombstones are saved in the meta; past RAGD_INDEX_DEAD_RATIO of the
 * vectors the caller rebuilds the index from SQLite (store_index_rebuild_due). For non-flat types
 * the load checks the meta (factory, size, checksum) instead of the flat byte layout.
 */
#include "ragd/store.h"

#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#include <jansson.h>

#include "ragd/util.h"
#include "store_faiss_int.h"
#include "store_hnsw_walk_int.h"
#include "store_grow_int.h"
#include "store_index_int.h"
#include "store_simd_int.h"

#define RAGD_INDEX_META_FORMAT 2 /* = RAGD_SUM_XXH3; format 1 (RAGD_SUM_SHA256) is still read */
#define RAGD_INDEX_META_MAX (32 * 1024 * 1024) /* room for the tombstones of ~3M vectors */
#define RAGD_INDEX_FLAT "Flat"
#define RAGD_INDEX_FACTORY_MAX 256
#define RAGD_INDEX_DEAD_RATIO 10      /* rebuild once more than 1/10 of the vectors are dead */
#define RAGD_INDEX_HNSW_EF_DEFAULT 16 /* FAISS's own efSearch default */
#define RAGD_INDEX_MAX_DIMS 65536
#define RAGD_INDEX_BULK_ADD 512 /* HNSW adds of this many vectors use every core */

/* The layout faiss_write_index produces for IndexIDMap2(IndexFlatIP), stable across FAISS
 * releases (it is FAISS's on-disk format): "IxM2", header, "IxFI", header, the vectors as a
 * length-prefixed float array, the ids as a length-prefixed int64 array. A header is d (int32),
 * ntotal (int64), two dummy int64, is_trained (1 byte), metric_type (int32). */
#define RAGD_INDEX_HEADER_BYTES 33
#define RAGD_INDEX_OFF_MAP_D 4
#define RAGD_INDEX_OFF_MAP_NTOTAL 8
#define RAGD_INDEX_OFF_MAP_METRIC 33
#define RAGD_INDEX_OFF_FLAT_TAG 37
#define RAGD_INDEX_OFF_FLAT_D 41
#define RAGD_INDEX_OFF_FLAT_NTOTAL 45
#define RAGD_INDEX_OFF_FLAT_METRIC 70
#define RAGD_INDEX_OFF_CODES_LEN 74
#define RAGD_INDEX_OFF_CODES 82
#define RAGD_INDEX_FIXED_BYTES 90 /* everything but the vectors and the ids */

struct store_index {
    FaissIndex *index;     /* IndexIDMap2 owning its sub-index */
    FaissIndexIDMap2 *map; /* the same object, as an IndexIDMap2 */
    int dims;
    int flat;              /* 1: IndexFlatIP, removals are real; 0: removals are tombstones */
    char factory[RAGD_INDEX_FACTORY_MAX];
    int ef_search;         /* HNSW efSearch; 0: FAISS's default */
    int ids_ascending;     /* 1: the id map is strictly ascending (lookups by binary search) */
    int64_t *dead;         /* ascending positions in the id map of removed vectors */
    size_t ndead, dead_cap;
    FaissIDSelector *dead_sel; /* selects the dead positions (NULL when none) */
    FaissIDSelector *live_sel; /* selects the others: what searches may return */
};

/* Records FAISS's last error as RAGD_ERR_INDEX. Returns: RAGD_ERR_INDEX. */
static ragd_rc index_error(ragd_err *err, const char *what)
{
    const char *msg = faiss_get_last_error();
    return ragd_err_set(err, RAGD_ERR_INDEX, "%s: %s", what, msg ? msg : "unknown FAISS error");
}

/* FAISS parallelises inside one query with OpenMP. On a small machine serving several requests
 * at once, one thread per query is faster overall, so every thread that touches the index asks
 * for one OpenMP thread. omp_set_num_threads only changes the calling thread's setting (it is a
 * per-thread ICV in libgomp), which is why this runs on each calling thread, once. */
static void index_threads_limit(void)
{
    static _Thread_local int done;
    if (!done) {
        omp_set_num_threads(1);
        done = 1;
    }
}

/* Returns: a new string path + suffix (free with free()), or NULL on OOM. */
static char *path_with_suffix(const char *path, const char *suffix)
{
    size_t a = strlen(path), b = strlen(suffix);
    char *s = malloc(a + b + 1);
    if (s == NULL) return NULL;
    memcpy(s, path, a);
    memcpy(s + a, suffix, b + 1);
    return s;
}

/* Returns: 1 when factory means the default exact index (NULL, empty or "Flat"). */
static int factory_is_flat(const char *factory)
{
    return factory == NULL || factory[0] == '\0' || strcmp(factory, RAGD_INDEX_FLAT) == 0;
}

/* Checks opts->factory is a type ragd can keep in step with SQLite. Returns: RAGD_OK or
 * RAGD_ERR_CONFIG naming the key. */
static ragd_rc factory_check(const char *factory, ragd_err *err)
{
    if (factory_is_flat(factory)) return RAGD_OK;
    if (strlen(factory) >= RAGD_INDEX_FACTORY_MAX)
        return ragd_err_set(err, RAGD_ERR_CONFIG, "store.index_factory is longer than %d bytes",
                            RAGD_INDEX_FACTORY_MAX - 1);
    if (strncmp(factory, "HNSW", 4) != 0 || strstr(factory, "IDMap") != NULL)
        return ragd_err_set(err, RAGD_ERR_CONFIG,
                            "store.index_factory \"%s\" is not supported: use \"Flat\" or "
                            "\"HNSW<M>\" (e.g. HNSW32); ragd adds the id map itself",
                            factory);
    return RAGD_OK;
}

/* Recomputes ids_ascending from the id map. */
static void ids_order_scan(store_index *idx)
{
    idx_t *map_ids = NULL;
    size_t n = 0;
    faiss_IndexIDMap2_id_map(idx->map, &map_ids, &n);
    idx->ids_ascending = 1;
    for (size_t i = 1; i < n && idx->ids_ascending; i++)
        idx->ids_ascending = map_ids[i] > map_ids[i - 1];
}

/* Frees the tombstone selectors. */
static void dead_sel_free(store_index *idx)
{
    faiss_IDSelector_free(idx->live_sel); /* frees only the Not, not what it wraps */
    faiss_IDSelector_free(idx->dead_sel);
    idx->live_sel = NULL;
    idx->dead_sel = NULL;
}

/* Rebuilds the selectors after idx->dead changed. Caller holds the write lock. */
static ragd_rc dead_sel_build(store_index *idx, ragd_err *err)
{
    dead_sel_free(idx);
    if (idx->ndead == 0) return RAGD_OK;
    FaissIDSelectorBatch *batch = NULL;
    if (faiss_IDSelectorBatch_new(&batch, idx->ndead, idx->dead) != 0)
        return index_error(err, "cannot select the removed vectors");
    idx->dead_sel = (FaissIDSelector *)batch;
    FaissIDSelectorNot *live = NULL;
    if (faiss_IDSelectorNot_new(&live, idx->dead_sel) != 0) {
        ragd_rc rc = index_error(err, "cannot select the live vectors");
        dead_sel_free(idx);
        return rc;
    }
    idx->live_sel = live;
    return RAGD_OK;
}

/* Applies opts->ef_search to an HNSW index. Returns: RAGD_OK or RAGD_ERR_INDEX. */
static ragd_rc ef_search_apply(store_index *idx, ragd_err *err)
{
    if (idx->flat || idx->ef_search <= 0) return RAGD_OK;
    FaissParameterSpace *ps = NULL;
    if (faiss_ParameterSpace_new(&ps) != 0) return index_error(err, "cannot set efSearch");
    int frc = faiss_ParameterSpace_set_index_parameter(ps, idx->index, "efSearch",
                                                       (double)idx->ef_search);
    faiss_ParameterSpace_free(ps);
    if (frc != 0) return index_error(err, "cannot set efSearch");
    return RAGD_OK;
}

/* Returns: a new store_index wrapping index, an IndexIDMap2 (steals index), or NULL on OOM
 * (index untouched). */
static store_index *index_wrap(FaissIndex *index, int dims, const store_index_opts *opts)
{
    store_index *idx = calloc(1, sizeof(*idx));
    if (idx == NULL) return NULL;
    /* ragd's SIMD flat storage (src/store_faiss_simd.cpp), same vectors, same file format. If it
     * cannot be installed (RAGD_SIMD=off, no memory) FAISS's own class stays: slower, as exact. */
    store_simd_install(index);
    idx->index = index;
    idx->map = faiss_IndexIDMap2_cast(index);
    idx->dims = dims;
    const char *factory = opts ? opts->factory : NULL;
    idx->flat = factory_is_flat(factory);
    snprintf(idx->factory, sizeof idx->factory, "%s",
             idx->flat || factory == NULL ? RAGD_INDEX_FLAT : factory);
    idx->ef_search = opts && opts->ef_search > 0 ? opts->ef_search : 0;
    if (!idx->flat && opts && opts->ef_construction > 0)
        store_simd_hnsw_ef_construction(index, opts->ef_construction);
    idx->ids_ascending = 1;
    return idx;
}

/* Creates the sub-index for a non-flat factory string. Returns: RAGD_OK and *out (new). */
static ragd_rc factory_build(int dims, const char *factory, FaissIndex **out, ragd_err *err)
{
    FaissIndex *sub = NULL;
    if (faiss_index_factory(&sub, dims, factory, METRIC_INNER_PRODUCT) != 0) {
        const char *msg = faiss_get_last_error();
        return ragd_err_set(err, RAGD_ERR_CONFIG, "store.index_factory \"%s\": %s", factory,
                            msg ? msg : "FAISS cannot build it");
    }
    if (!faiss_Index_is_trained(sub)) {
        faiss_Index_free(sub);
        return ragd_err_set(err, RAGD_ERR_CONFIG,
                            "store.index_factory \"%s\" needs training, which ragd does not do",
                            factory);
    }
    *out = sub;
    return RAGD_OK;
}

ragd_rc store_index_new_with(int dims, const store_index_opts *opts, store_index **out,
                             ragd_err *err)
{
    if (out == NULL || dims <= 0 || dims > RAGD_INDEX_MAX_DIMS)
        return ragd_err_set(err, RAGD_ERR_INVALID, "index dimensions must be 1..%d, not %d",
                            RAGD_INDEX_MAX_DIMS, dims);
    const char *factory = opts ? opts->factory : NULL;
    ragd_rc rc = factory_check(factory, err);
    if (rc != RAGD_OK) return rc;
    index_threads_limit();
    FaissIndex *sub = NULL;
    if (factory_is_flat(factory)) {
        FaissIndexFlatIP *flat = NULL;
        if (faiss_IndexFlatIP_new_with(&flat, dims) != 0)
            return index_error(err, "cannot create the flat index");
        sub = flat;
    } else {
        rc = factory_build(dims, factory, &sub, err);
        if (rc != RAGD_OK) return rc;
    }
    FaissIndexIDMap2 *map = NULL;
    if (faiss_IndexIDMap2_new(&map, sub) != 0) {
        rc = index_error(err, "cannot create the id map");
        faiss_Index_free(sub);
        return rc;
    }
    /* The map frees the sub-index with itself. */
    faiss_IndexIDMap2_set_own_fields(map, 1);
    store_index *idx = index_wrap(map, dims, opts);
    if (idx == NULL) {
        faiss_Index_free(map);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    }
    rc = ef_search_apply(idx, err);
    if (rc != RAGD_OK) {
        store_index_free(idx);
        return rc;
    }
    *out = idx;
    return RAGD_OK;
}

ragd_rc store_index_new(int dims, store_index **out, ragd_err *err)
{
    return store_index_new_with(dims, NULL, out, err);
}

void store_index_free(store_index *idx)
{
    if (idx == NULL) return;
    dead_sel_free(idx);
    free(idx->dead);
    faiss_Index_free(idx->index);
    free(idx);
}

const char *store_index_factory(const store_index *idx)
{
    return idx ? idx->factory : RAGD_INDEX_FLAT;
}

int store_index_simd(const store_index *idx)
{
    return idx != NULL && store_simd_installed(idx->index);
}

size_t store_index_tombstones(const store_index *idx)
{
    return idx ? idx->ndead : 0;
}

int store_index_rebuild_due(const store_index *idx)
{
    if (idx == NULL || idx->ndead == 0) return 0;
    idx_t total = faiss_Index_ntotal(idx->index);
    return idx->ndead * RAGD_INDEX_DEAD_RATIO > (size_t)total;
}

ragd_rc store_index_add(store_index *idx, size_t n, const int64_t *ids, const float *vecs,
                        ragd_err *err)
{
    if (idx == NULL || (n > 0 && (ids == NULL || vecs == NULL)))
        return ragd_err_set(err, RAGD_ERR_INVALID, "store_index_add: missing argument");
    if (n == 0) return RAGD_OK;
    if (n > (size_t)INT64_MAX)
        return ragd_err_set(err, RAGD_ERR_INVALID, "store_index_add: too many vectors");
    index_threads_limit();
    idx_t *map_ids = NULL;
    size_t before = 0;
    faiss_IndexIDMap2_id_map(idx->map, &map_ids, &before);
    int ascending = idx->ids_ascending && (before == 0 || ids[0] > map_ids[before - 1]);
    for (size_t i = 1; i < n && ascending; i++) ascending = ids[i] > ids[i - 1];
    /* A bulk add to a graph index (a rebuild from SQLite, a large document) is the one place
     * where FAISS's own threads pay: the caller holds the write lock, so no search competes.
     * The OpenMP setting is the calling thread's own; it goes back to one thread after. */
    int bulk = !idx->flat && n >= RAGD_INDEX_BULK_ADD;
    /* Room first, so FAISS's own growth does not hold the vectors twice (a failure here is not
     * one: FAISS then grows them itself). */
    store_grow_reserve(idx->index, n);
    if (bulk) omp_set_num_threads(omp_get_num_procs());
    int frc = faiss_Index_add_with_ids(idx->index, (idx_t)n, vecs, ids);
    if (bulk) omp_set_num_threads(1);
    if (frc != 0) return index_error(err, "cannot add vectors to the index");
    idx->ids_ascending = ascending;
    return RAGD_OK;
}

static int i64_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Returns: 1 when position pos of the id map is a tombstone. */
static int dead_has(const store_index *idx, int64_t pos)
{
    return idx->ndead > 0 &&
           bsearch(&pos, idx->dead, idx->ndead, sizeof *idx->dead, i64_cmp) != NULL;
}

/* Returns: the live position of id in the id map, or -1. */
static int64_t live_position(const store_index *idx, const idx_t *map_ids, size_t n, int64_t id)
{
    if (idx->ids_ascending) {
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (map_ids[mid] < id)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < n && map_ids[lo] == id && !dead_has(idx, (int64_t)lo)) return (int64_t)lo;
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (map_ids[i] == id && !dead_has(idx, (int64_t)i)) return (int64_t)i;
    return -1;
}

/* Tombstones the live vectors of ids (HNSW and other types FAISS cannot remove from). Caller
 * holds the write lock. Returns: RAGD_OK and *count, the vectors tombstoned. */
static ragd_rc dead_add(store_index *idx, size_t n, const int64_t *ids, size_t *count,
                        ragd_err *err)
{
    idx_t *map_ids = NULL;
    size_t total = 0;
    faiss_IndexIDMap2_id_map(idx->map, &map_ids, &total);
    if (idx->ndead + n > idx->dead_cap) {
        size_t cap = idx->dead_cap ? idx->dead_cap : 64;
        while (cap < idx->ndead + n) cap *= 2;
        int64_t *d = realloc(idx->dead, cap * sizeof *d);
        if (d == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        idx->dead = d;
        idx->dead_cap = cap;
    }
    /* Look every id up against the old set, then append and sort once. */
    size_t added = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t pos = live_position(idx, map_ids, total, ids[i]);
        if (pos < 0) continue;
        idx->dead[idx->ndead + added++] = pos;
    }
    size_t old = idx->ndead;
    idx->ndead += added;
    qsort(idx->dead, idx->ndead, sizeof *idx->dead, i64_cmp);
    /* The same id given twice in one call finds the same position twice: keep it once. */
    size_t w = 0;
    for (size_t i = 0; i < idx->ndead; i++)
        if (w == 0 || idx->dead[i] != idx->dead[w - 1]) idx->dead[w++] = idx->dead[i];
    idx->ndead = w;
    *count = w - old;
    return dead_sel_build(idx, err);
}

ragd_rc store_index_remove(store_index *idx, size_t n, const int64_t *ids, size_t *removed,
                           ragd_err *err)
{
    if (idx == NULL || (n > 0 && ids == NULL))
        return ragd_err_set(err, RAGD_ERR_INVALID, "store_index_remove: missing argument");
    if (n == 0) {
        if (removed) *removed = 0;
        return RAGD_OK;
    }
    index_threads_limit();
    if (!idx->flat) {
        size_t count = 0;
        ragd_rc rc = dead_add(idx, n, ids, &count, err);
        if (removed) *removed = count;
        return rc;
    }
    FaissIDSelectorBatch *batch = NULL;
    if (faiss_IDSelectorBatch_new(&batch, n, ids) != 0)
        return index_error(err, "cannot select ids to remove");
    size_t count = 0;
    int frc = faiss_Index_remove_ids(idx->index, (const FaissIDSelector *)batch, &count);
    faiss_IDSelector_free((FaissIDSelector *)batch);
    if (frc != 0) return index_error(err, "cannot remove ids from the index");
    if (removed) *removed = count;
    return RAGD_OK;
}

ragd_rc store_index_clear(store_index *idx, ragd_err *err)
{
    if (idx == NULL) return ragd_err_set(err, RAGD_ERR_INVALID, "store_index_clear: no index");
    if (faiss_Index_reset(idx->index) != 0) return index_error(err, "cannot clear the index");
    idx->ndead = 0;
    idx->ids_ascending = 1;
    dead_sel_free(idx);
    return RAGD_OK;
}

ragd_rc store_index_search(const store_index *idx, const float *query, size_t k, int64_t *ids,
                           float *scores, size_t *found, ragd_err *err)
{
    return store_index_search_ef(idx, query, k, 0, ids, scores, found, err);
}

ragd_rc store_index_search_ef(const store_index *idx, const float *query, size_t k, int ef_search,
                              int64_t *ids, float *scores, size_t *found, ragd_err *err)
{
    if (idx == NULL || query == NULL || found == NULL || (k > 0 && (ids == NULL || scores == NULL)))
        return ragd_err_set(err, RAGD_ERR_INVALID, "store_index_search: missing argument");
    index_threads_limit();
    /* Asking FAISS for no more than there is keeps its result heap small when k is large. */
    size_t total = store_index_count(idx);
    size_t want = total < k ? total : k;
    if (want == 0) {
        *found = 0;
        return RAGD_OK;
    }
    /* A per-search efSearch goes down as search parameters, like the tombstone selector: the
     * index's own efSearch is shared by every thread and is never changed by a search. */
    int per_search = !idx->flat && ef_search > 0 && ef_search != idx->ef_search;
    if (idx->ndead == 0 && !per_search) {
        /* ragd's own walk of the graph when it covers the index (same results as FAISS). */
        int walked = store_hnsw_walk_search(idx->index, query, (int64_t)want, NULL, scores, ids);
        if (walked < 0 ||
            (walked == 0 && faiss_Index_search(idx->index, 1, query, (idx_t)want, scores, ids) != 0))
            return index_error(err, "index search failed");
    } else {
        /* The id map cannot pass a selector down (FAISS 1.7.3), so search its sub-index with
         * the live positions only and translate positions to ids here. The parameters are per
         * search: FAISS may modify them while searching. */
        FaissSearchParametersHNSW *params = NULL;
        int ef = per_search ? ef_search
                 : idx->ef_search > 0 ? idx->ef_search : RAGD_INDEX_HNSW_EF_DEFAULT;
        /* FAISS 1.7.3 sizes the search's candidate queue by max(the index's efSearch, k) and
         * takes only the stopping rule from the parameters, so a per-search efSearch above the
         * index's would barely widen anything. Asking for max(k, ef) results sizes the queue
         * at ef (the usual meaning of efSearch: the beam is the result list); the best `want`
         * of them are kept. Measured in tests/unit/test_index.c (test_hnsw_ef_search_per_call). */
        idx_t ntotal = faiss_Index_ntotal(idx->index);
        size_t fetch = want;
        if (per_search && (size_t)ef > fetch) fetch = (size_t)ef;
        if (ntotal > 0 && fetch > (size_t)ntotal) fetch = (size_t)ntotal;
        if (fetch < want) fetch = want;
        int64_t *fids = ids;
        float *fscores = scores;
        if (fetch > want) {
            fids = malloc(fetch * sizeof *fids);
            fscores = malloc(fetch * sizeof *fscores);
            if (fids == NULL || fscores == NULL) {
                free(fids);
                free(fscores);
                return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
            }
        }
        int frc = faiss_SearchParametersHNSW_new_with(&params, idx->live_sel, ef);
        FaissIndex *sub = faiss_IndexIDMap2_sub_index(idx->map);
        if (frc == 0) {
            int walked = store_hnsw_walk_search(sub, query, (int64_t)fetch,
                                                (const FaissSearchParameters *)params, fscores,
                                                fids);
            if (walked < 0)
                frc = -1;
            else if (walked == 0)
                frc = faiss_Index_search_with_params(sub, 1, query, (idx_t)fetch, params,
                                                     fscores, fids);
        }
        faiss_SearchParameters_free(params);
        if (frc == 0 && fids != ids) {
            memcpy(ids, fids, want * sizeof *ids);
            memcpy(scores, fscores, want * sizeof *scores);
        }
        if (fids != ids) {
            free(fids);
            free(fscores);
        }
        if (frc != 0) return index_error(err, "index search failed");
        idx_t *map_ids = NULL;
        size_t map_n = 0;
        faiss_IndexIDMap2_id_map(idx->map, &map_ids, &map_n);
        for (size_t i = 0; i < want; i++)
            if (ids[i] >= 0) ids[i] = (size_t)ids[i] < map_n ? map_ids[ids[i]] : -1;
    }
    /* FAISS pads missing results with id -1; keep only real ones, in order. */
    size_t n = 0;
    for (size_t i = 0; i < want; i++) {
        if (ids[i] < 0) continue;
        ids[n] = ids[i];
        scores[n] = scores[i];
        n++;
    }
    *found = n;
    return RAGD_OK;
}

int store_index_is_flat(const store_index *idx)
{
    return idx != NULL && idx->flat;
}

size_t store_index_count(const store_index *idx)
{
    if (idx == NULL) return 0;
    idx_t n = faiss_Index_ntotal(idx->index);
    return n > 0 && (size_t)n > idx->ndead ? (size_t)n - idx->ndead : 0;
}

int store_index_dims(const store_index *idx)
{
    return idx ? idx->dims : 0;
}

size_t store_index_bytes(const store_index *idx)
{
    if (idx == NULL) return 0;
    /* The vectors (dead ones too) plus the id map; IndexIDMap2's reverse hash map and HNSW's
     * graph are not counted. */
    idx_t n = faiss_Index_ntotal(idx->index);
    return (size_t)(n > 0 ? n : 0) * ((size_t)idx->dims * sizeof(float) + sizeof(int64_t));
}

/* Returns: the size faiss_write_index gives an IndexIDMap2(IndexFlatIP) of count vectors of
 * dims floats, or 0 when that would overflow. */
static uint64_t index_file_size(uint64_t count, uint64_t dims)
{
    uint64_t per_vector = dims * 4 + 8;
    if (count > (UINT64_MAX - RAGD_INDEX_FIXED_BYTES) / per_vector) return 0;
    return RAGD_INDEX_FIXED_BYTES + count * per_vector;
}

/* Writes the index to tmp (already open as f) through the checksum (one pass: nothing is read
 * back) and flushes it to disk. Returns: RAGD_OK, hex (XXH3-64) and *bytes, the file's size. */
static ragd_rc index_file_write(const store_index *idx, FILE *f, const char *tmp,
                                char hex[RAGD_SUM_HEX_MAX], uint64_t *bytes, ragd_err *err)
{
    store_sum *sum = NULL;
    ragd_rc rc = store_sum_new(RAGD_SUM_XXH3, fileno(f), &sum, err);
    if (rc != RAGD_OK) return rc;
    /* Around the page cache where the file system allows: the file is read back only at the
     * next start, and copying it into the page cache was most of its cost. */
    store_sum_direct(sum, tmp);
    FILE *out = store_sum_stream(sum, "w");
    if (out == NULL) {
        store_sum_free(sum);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "cannot write %s: out of memory", tmp);
    }
    int wrote = faiss_write_index(idx->index, out);
    int closed = fclose(out); /* flushes the last block through the checksum and writes it */
    if (wrote != 0 && !store_sum_failed(sum))
        rc = index_error(err, "cannot write the index");
    else if (wrote != 0 || closed != 0 || store_sum_failed(sum))
        rc = ragd_err_set(err, RAGD_ERR_IO, "cannot write %s: %s", tmp,
                          strerror(store_sum_errno(sum) ? store_sum_errno(sum) : errno));
    else if (fsync(fileno(f)) != 0)
        rc = ragd_err_set(err, RAGD_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    if (rc == RAGD_OK) rc = store_sum_hex(sum, hex, err);
    uint64_t size = store_sum_bytes(sum);
    store_sum_free(sum);
    if (rc != RAGD_OK) return rc;
    *bytes = size;
    if (!idx->flat) return RAGD_OK; /* only the flat layout is known byte for byte */
    uint64_t expected = index_file_size(store_index_count(idx), (uint64_t)idx->dims);
    if (size != expected)
        return ragd_err_set(err, RAGD_ERR_INDEX,
                            "FAISS wrote %llu bytes to %s, expected %llu: unknown index layout",
                            (unsigned long long)size, tmp, (unsigned long long)expected);
    return RAGD_OK;
}

ragd_rc store_index_save(const store_index *idx, const char *path, uint64_t generation,
                         ragd_err *err)
{
    if (idx == NULL || path == NULL || path[0] == '\0')
        return ragd_err_set(err, RAGD_ERR_INVALID, "store_index_save: missing argument");
    if (generation > (uint64_t)INT64_MAX)
        return ragd_err_set(err, RAGD_ERR_INVALID, "index generation %llu is out of range",
                            (unsigned long long)generation);
    ragd_rc rc = RAGD_OK;
    char *tmp = path_with_suffix(path, ".tmp");
    char *meta = path_with_suffix(path, ".meta");
    char *text = NULL;
    json_t *root = NULL;
    FILE *f = NULL;
    int renamed = 0;
    if (tmp == NULL || meta == NULL) {
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* The checksum is taken while the temp file is written, before the rename, so a failure
     * leaves the previous index and meta pair in place. */
    f = fopen(tmp, "w+be");
    if (f == NULL) {
        rc = ragd_err_set(err, RAGD_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        goto done;
    }
    char hex[RAGD_SUM_HEX_MAX];
    uint64_t bytes = 0;
    rc = index_file_write(idx, f, tmp, hex, &bytes, err);
    if (rc != RAGD_OK) goto done;
    int close_rc = fclose(f);
    f = NULL;
    if (close_rc != 0) {
        rc = ragd_err_set(err, RAGD_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
        goto done;
    }
    if (rename(tmp, path) != 0) {
        rc = ragd_err_set(err, RAGD_ERR_IO, "cannot rename %s to %s: %s", tmp, path,
                          strerror(errno));
        goto done;
    }
    renamed = 1;
    rc = util_dir_fsync_parent(path, err);
    if (rc != RAGD_OK) goto done;

    root = json_pack("{s:i, s:I, s:I, s:i, s:s, s:s, s:I}", "format", RAGD_INDEX_META_FORMAT,
                     "generation", (json_int_t)generation, "count",
                     (json_int_t)store_index_count(idx), "dims", idx->dims, "xxh3", hex,
                     "factory", idx->factory, "bytes", (json_int_t)bytes);
    if (root != NULL && idx->ndead > 0) {
        json_t *dead = json_array();
        for (size_t i = 0; dead != NULL && i < idx->ndead; i++)
            if (json_array_append_new(dead, json_integer((json_int_t)idx->dead[i])) != 0) {
                json_decref(dead);
                dead = NULL;
            }
        if (dead == NULL || json_object_set_new(root, "tombstones", dead) != 0) {
            json_decref(root);
            root = NULL;
        }
    }
    text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    if (text == NULL) {
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory writing %s", meta);
        goto done;
    }
    rc = util_file_write_atomic(meta, text, strlen(text), err);
done:
    if (f != NULL) fclose(f);
    if (!renamed && tmp != NULL) unlink(tmp);
    free(text);
    json_decref(root);
    free(meta);
    free(tmp);
    return rc;
}

typedef struct index_meta {
    json_int_t generation;
    json_int_t count; /* live vectors */
    json_int_t dims;
    json_int_t bytes; /* the index file's size; -1 when absent (flat files before factories) */
    store_sum_kind sum_kind;     /* = the meta's format */
    char sum[RAGD_SUM_HEX_MAX];  /* the file's checksum in hex: "sha256" or "xxh3" */
    char factory[RAGD_INDEX_FACTORY_MAX]; /* "Flat" when absent */
    int64_t *dead; /* tombstones, ascending (new, free()); NULL when none */
    size_t ndead;
} index_meta;

/* Reads the optional fields of a meta (factory, bytes, tombstones) into m. Returns: a static
 * description of what is wrong, or NULL. */
static const char *index_meta_optional(json_t *root, index_meta *m)
{
    json_t *factory = json_object_get(root, "factory");
    json_t *bytes = json_object_get(root, "bytes");
    json_t *dead = json_object_get(root, "tombstones");
    snprintf(m->factory, sizeof m->factory, "%s", RAGD_INDEX_FLAT);
    m->bytes = -1;
    if (factory != NULL) {
        if (!json_is_string(factory) || json_string_length(factory) == 0 ||
            json_string_length(factory) >= sizeof m->factory)
            return "factory is not a valid string";
        snprintf(m->factory, sizeof m->factory, "%s", json_string_value(factory));
    }
    if (bytes != NULL) {
        if (!json_is_integer(bytes) || json_integer_value(bytes) < 0) return "bytes is invalid";
        m->bytes = json_integer_value(bytes);
    }
    if (dead == NULL) return NULL;
    if (!json_is_array(dead) || json_array_size(dead) == 0) return "tombstones is invalid";
    m->ndead = json_array_size(dead);
    m->dead = malloc(m->ndead * sizeof *m->dead);
    if (m->dead == NULL) return "out of memory reading tombstones";
    for (size_t i = 0; i < m->ndead; i++) {
        json_t *v = json_array_get(dead, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            (i > 0 && json_integer_value(v) <= m->dead[i - 1]))
            return "tombstones are not ascending positions";
        m->dead[i] = json_integer_value(v);
    }
    return NULL;
}

/* Reads and validates the meta file meta_path. Returns: RAGD_OK and *out, RAGD_ERR_NOT_FOUND
 * when the file does not exist, RAGD_ERR_INDEX for anything else. */
static ragd_rc index_meta_parse(const char *meta_path, index_meta *out, ragd_err *err)
{
    char *text = NULL;
    size_t len = 0;
    ragd_err local = {0};
    ragd_rc rc = util_file_read(meta_path, RAGD_INDEX_META_MAX, &text, &len, &local);
    if (rc == RAGD_ERR_NOT_FOUND)
        return ragd_err_set(err, RAGD_ERR_NOT_FOUND, "index meta %s is missing", meta_path);
    if (rc != RAGD_OK)
        return ragd_err_set(err, RAGD_ERR_INDEX, "cannot read index meta: %s", local.msg);

    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    free(text);
    if (root == NULL)
        return ragd_err_set(err, RAGD_ERR_INDEX, "index meta %s is not valid JSON: %s",
                            meta_path, jerr.text);
    json_int_t format = 0;
    const char *sha = NULL;
    index_meta m = {0};
    if (json_unpack_ex(root, &jerr, 0, "{s:I}", "format", &format) != 0) {
        rc = ragd_err_set(err, RAGD_ERR_INDEX, "index meta %s is not valid: %s", meta_path,
                          jerr.text);
        goto done;
    }
    if (format != RAGD_SUM_SHA256 && format != RAGD_SUM_XXH3) {
        rc = ragd_err_set(err, RAGD_ERR_INDEX, "index meta %s has format %lld, expected %d or %d",
                          meta_path, (long long)format, RAGD_SUM_SHA256, RAGD_INDEX_META_FORMAT);
        goto done;
    }
    m.sum_kind = (store_sum_kind)format;
    if (json_unpack_ex(root, &jerr, 0, "{s:I, s:I, s:I, s:s}", "generation", &m.generation,
                       "count", &m.count, "dims", &m.dims,
                       m.sum_kind == RAGD_SUM_SHA256 ? "sha256" : "xxh3", &sha) != 0) {
        rc = ragd_err_set(err, RAGD_ERR_INDEX, "index meta %s is not valid: %s", meta_path,
                          jerr.text);
        goto done;
    }
    if (m.generation < 0 || m.count < 0 || m.dims <= 0 || m.dims > RAGD_INDEX_MAX_DIMS) {
        rc = ragd_err_set(err, RAGD_ERR_INDEX,
                          "index meta %s is out of range: generation %lld, count %lld, dims %lld",
                          meta_path, (long long)m.generation, (long long)m.count,
                          (long long)m.dims);
        goto done;
    }
    size_t sha_len = strlen(sha);
    if (sha_len != store_sum_hex_len(m.sum_kind) ||
        strspn(sha, "0123456789abcdef") != sha_len) {
        rc = ragd_err_set(err, RAGD_ERR_INDEX, "index meta %s has no valid %s", meta_path,
                          m.sum_kind == RAGD_SUM_SHA256 ? "sha256" : "xxh3");
        goto done;
    }
    memcpy(m.sum, sha, sha_len + 1);
    const char *bad = index_meta_optional(root, &m);
    if (bad != NULL) {
        free(m.dead);
        rc = ragd_err_set(err, RAGD_ERR_INDEX, "index meta %s: %s", meta_path, bad);
        goto done;
    }
    *out = m;
done:
    json_decref(root);
    return rc;
}

/* index_meta_parse of the meta file beside the index file path (path.meta). */
static ragd_rc index_meta_read(const char *path, index_meta *out, ragd_err *err)
{
    char *meta_path = path_with_suffix(path, ".meta");
    if (meta_path == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    ragd_rc rc = index_meta_parse(meta_path, out, err);
    free(meta_path);
    return rc;
}

static int32_t read_i32(const unsigned char *p)
{
    int32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static int64_t read_i64(const unsigned char *p)
{
    int64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* Checks that f has exactly the layout FAISS writes for an IndexIDMap2(IndexFlatIP) holding
 * m->count vectors of m->dims floats, so that reading it allocates only what the file holds.
 * The caller has checked the file size. Returns: RAGD_OK or RAGD_ERR_INDEX. */
static ragd_rc index_layout_check(FILE *f, const char *path, const index_meta *m, ragd_err *err)
{
    unsigned char head[RAGD_INDEX_OFF_CODES];
    unsigned char ids_len[8];
    uint64_t codes_bytes = (uint64_t)m->count * (uint64_t)m->dims * 4;
    rewind(f);
    if (fread(head, 1, sizeof(head), f) != sizeof(head) ||
        fseeko(f, (off_t)(RAGD_INDEX_OFF_CODES + codes_bytes), SEEK_SET) != 0 ||
        fread(ids_len, 1, sizeof(ids_len), f) != sizeof(ids_len))
        return ragd_err_set(err, RAGD_ERR_INDEX, "cannot read the layout of %s", path);
    const char *what = NULL;
    if (memcmp(head, "IxM2", 4) != 0 || memcmp(head + RAGD_INDEX_OFF_FLAT_TAG, "IxFI", 4) != 0)
        what = "not an IndexIDMap2 over an IndexFlatIP";
    else if (read_i32(head + RAGD_INDEX_OFF_MAP_D) != m->dims ||
             read_i32(head + RAGD_INDEX_OFF_FLAT_D) != m->dims)
        what = "dimensions differ from the meta";
    else if (read_i64(head + RAGD_INDEX_OFF_MAP_NTOTAL) != m->count ||
             read_i64(head + RAGD_INDEX_OFF_FLAT_NTOTAL) != m->count)
        what = "vector count differs from the meta";
    else if (read_i32(head + RAGD_INDEX_OFF_MAP_METRIC) != METRIC_INNER_PRODUCT ||
             read_i32(head + RAGD_INDEX_OFF_FLAT_METRIC) != METRIC_INNER_PRODUCT)
        what = "metric is not inner product";
    else if ((uint64_t)read_i64(head + RAGD_INDEX_OFF_CODES_LEN) != codes_bytes / 4 ||
             (uint64_t)read_i64(ids_len) != (uint64_t)m->count)
        what = "array lengths differ from the meta";
    if (what != NULL)
        return ragd_err_set(err, RAGD_ERR_INDEX, "index file %s: %s", path, what);
    return RAGD_OK;
}

/* Reads the index in f (already checked against m) and verifies what FAISS built: an
 * IndexIDMap2 over an IndexFlatIP when flat, over anything otherwise (the factory string in the
 * meta names it), holding m->count live vectors and m->ndead tombstones.
 * Returns: RAGD_OK and *out (new, free with faiss_Index_free) or RAGD_ERR_INDEX. */
static ragd_rc index_file_read(FILE *f, const char *path, const index_meta *m, int flat,
                               FaissIndex **out, ragd_err *err)
{
    FaissIndex *index = NULL;
    rewind(f);
    if (faiss_read_index(f, 0, &index) != 0) {
        const char *msg = faiss_get_last_error();
        return ragd_err_set(err, RAGD_ERR_INDEX, "cannot read index %s: %s", path,
                            msg ? msg : "unknown FAISS error");
    }
    const char *what = NULL;
    FaissIndexIDMap2 *map = faiss_IndexIDMap2_cast(index);
    if (map == NULL || (flat && faiss_IndexFlatIP_cast(faiss_IndexIDMap2_sub_index(map)) == NULL))
        what = flat ? "it is not an IndexIDMap2 over an IndexFlatIP" : "it is not an IndexIDMap2";
    else if (faiss_Index_d(index) != m->dims)
        what = "its dimensions differ from the meta";
    else if (faiss_Index_ntotal(index) != m->count + (json_int_t)m->ndead ||
             (m->ndead > 0 && m->dead[m->ndead - 1] >= faiss_Index_ntotal(index)))
        what = "its vector count differs from the meta";
    else if (faiss_Index_metric_type(index) != METRIC_INNER_PRODUCT)
        what = "its metric is not inner product";
    if (what != NULL) {
        faiss_Index_free(index);
        return ragd_err_set(err, RAGD_ERR_INDEX, "index %s was read but %s", path, what);
    }
    *out = index;
    return RAGD_OK;
}

ragd_rc store_index_saved_factory(const char *path, char *factory, size_t size, ragd_err *err)
{
    if (path == NULL || factory == NULL || size == 0)
        return ragd_err_set(err, RAGD_ERR_INVALID, "store_index_saved_factory: missing argument");
    index_meta m = {0};
    ragd_rc rc = index_meta_read(path, &m, err);
    if (rc != RAGD_OK) return rc;
    free(m.dead);
    if (strlen(m.factory) >= size)
        return ragd_err_set(err, RAGD_ERR_INVALID, "index factory \"%s\" is too long", m.factory);
    memcpy(factory, m.factory, strlen(m.factory) + 1);
    return RAGD_OK;
}

ragd_rc store_index_load(const char *path, int dims, store_index **out, uint64_t *generation,
                         ragd_err *err)
{
    return store_index_load_with(path, dims, NULL, out, generation, err);
}

/* Checks the index file's size against the meta before reading or parsing anything: the flat
 * layout's exact size, or the size the meta recorded. Returns: RAGD_OK or RAGD_ERR_INDEX. */
static ragd_rc index_size_check(FILE *f, const char *path, const index_meta *m, int flat,
                                uint64_t *expected, ragd_err *err)
{
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))
        return ragd_err_set(err, RAGD_ERR_INDEX, "index %s is not a regular file", path);
    if (flat && m->ndead > 0)
        return ragd_err_set(err, RAGD_ERR_INDEX, "flat index %s has tombstones in its meta", path);
    *expected = flat ? index_file_size((uint64_t)m->count, (uint64_t)m->dims)
                     : (m->bytes > 0 ? (uint64_t)m->bytes : 0);
    if (*expected == 0)
        return ragd_err_set(err, RAGD_ERR_INDEX, "index meta for %s claims an impossible size: "
                            "%lld vectors of %lld dimensions", path, (long long)m->count,
                            (long long)m->dims);
    if (m->bytes >= 0 && (uint64_t)m->bytes != *expected)
        return ragd_err_set(err, RAGD_ERR_INDEX, "index meta for %s records %lld bytes, expected "
                            "%llu", path, (long long)m->bytes, (unsigned long long)*expected);
    if ((uint64_t)st.st_size != *expected)
        return ragd_err_set(err, RAGD_ERR_INDEX,
                            "index %s is %llu bytes, expected %llu for %lld vectors of %lld "
                            "dimensions",
                            path, (unsigned long long)st.st_size, (unsigned long long)*expected,
                            (long long)m->count, (long long)m->dims);
    return RAGD_OK;
}

/* Finishes sum (every byte of the file, up to its end) and compares it with the meta's.
 * Returns: RAGD_OK or RAGD_ERR_INDEX. */
static ragd_rc index_sum_verify(store_sum *sum, const char *path, const index_meta *m,
                                uint64_t expected, ragd_err *err)
{
    char hex[RAGD_SUM_HEX_MAX];
    ragd_err local = {0};
    if (store_sum_drain(sum, &local) != RAGD_OK || store_sum_failed(sum) ||
        store_sum_hex(sum, hex, &local) != RAGD_OK)
        return ragd_err_set(err, RAGD_ERR_INDEX, "cannot read index %s: %s", path,
                            local.msg[0] ? local.msg : "I/O error");
    if (store_sum_bytes(sum) != expected || strcmp(hex, m->sum) != 0)
        return ragd_err_set(err, RAGD_ERR_INDEX,
                            "checksum (%s) of index %s does not match its meta (changed or partly "
                            "written)",
                            m->sum_kind == RAGD_SUM_SHA256 ? "SHA-256" : "XXH3-64", path);
    return RAGD_OK;
}

/* Reads the index in f (its size, and for flat its layout, already checked against m) with its
 * checksum verified. Flat: FAISS reads through the checksum stream, one pass, and what it built
 * is dropped if the checksum then differs (the layout check bounded every allocation). Other
 * types: their lengths are not checked before FAISS reads them, so the checksum is verified in a
 * pass of its own before FAISS parses anything. Returns: RAGD_OK and *out (new, free with
 * faiss_Index_free), or RAGD_ERR_INDEX / RAGD_ERR_NOMEM. */
static ragd_rc index_read_checked(FILE *f, const char *path, const index_meta *m, int flat,
                                  uint64_t expected, FaissIndex **out, ragd_err *err)
{
    store_sum *sum = NULL;
    ragd_rc rc = store_sum_new(m->sum_kind, fileno(f), &sum, err);
    if (rc != RAGD_OK) return rc;
    FaissIndex *index = NULL;
    if (!flat) {
        rc = index_sum_verify(sum, path, m, expected, err);
        if (rc == RAGD_OK) rc = index_file_read(f, path, m, flat, &index, err);
    } else {
        FILE *in = store_sum_stream(sum, "r");
        if (in == NULL) rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory reading %s", path);
        if (rc == RAGD_OK) rc = index_file_read(in, path, m, flat, &index, err);
        if (in != NULL) fclose(in);
        if (rc == RAGD_OK) rc = index_sum_verify(sum, path, m, expected, err);
        if (rc != RAGD_OK && index != NULL) {
            faiss_Index_free(index);
            index = NULL;
        }
    }
    store_sum_free(sum);
    if (rc == RAGD_OK) *out = index;
    return rc;
}

ragd_rc store_index_load_with(const char *path, int dims, const store_index_opts *opts,
                              store_index **out, uint64_t *generation, ragd_err *err)
{
    if (path == NULL || out == NULL)
        return ragd_err_set(err, RAGD_ERR_INVALID, "store_index_load: missing argument");
    const char *want_factory = opts && !factory_is_flat(opts->factory) ? opts->factory
                                                                        : RAGD_INDEX_FLAT;
    int flat = factory_is_flat(want_factory);
    index_meta m = {0};
    ragd_rc rc = index_meta_read(path, &m, err);
    if (rc != RAGD_OK) return rc;
    FILE *f = NULL;
    FaissIndex *index = NULL;
    store_index *idx = NULL;
    if (m.dims != dims) {
        rc = ragd_err_set(err, RAGD_ERR_INDEX,
                          "index %s was saved with %lld dimensions, the model has %d", path,
                          (long long)m.dims, dims);
        goto done;
    }
    if (strcmp(m.factory, want_factory) != 0) {
        rc = ragd_err_set(err, RAGD_ERR_INDEX,
                          "index %s was built with index_factory \"%s\", the configuration "
                          "says \"%s\"", path, m.factory, want_factory);
        goto done;
    }
    f = fopen(path, "rbe");
    if (f == NULL) {
        int e = errno;
        rc = ragd_err_set(err, e == ENOENT ? RAGD_ERR_NOT_FOUND : RAGD_ERR_INDEX,
                          "cannot open index %s: %s", path, strerror(e));
        goto done;
    }
    uint64_t expected = 0;
    rc = index_size_check(f, path, &m, flat, &expected, err);
    if (rc != RAGD_OK) goto done;
    if (flat) {
        rc = index_layout_check(f, path, &m, err);
        if (rc != RAGD_OK) goto done;
    }
    index_threads_limit();
    rc = index_read_checked(f, path, &m, flat, expected, &index, err);
    if (rc != RAGD_OK) goto done;
    idx = index_wrap(index, dims, opts);
    if (idx == NULL) {
        faiss_Index_free(index);
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        goto done;
    }
    idx->dead = m.dead;
    idx->ndead = idx->dead_cap = m.ndead;
    m.dead = NULL;
    ids_order_scan(idx);
    ragd_err local2 = {0};
    if (ef_search_apply(idx, &local2) != RAGD_OK || dead_sel_build(idx, &local2) != RAGD_OK) {
        rc = ragd_err_set(err, RAGD_ERR_INDEX, "index %s: %s", path, local2.msg);
        store_index_free(idx);
        goto done;
    }
    *out = idx;
    if (generation) *generation = (uint64_t)m.generation;
done:
    if (f != NULL) fclose(f);
    free(m.dead);
    return rc;
}
