/* SPDX-License-Identifier: MIT */
/*
 * store_faiss_simd.cpp - FAISS flat storage searched with ragd's SIMD kernels. Debian 12's
 * libfaiss.a (1.7.3) is compiled for baseline x86-64: its exact search and the distance
 * computer that HNSW's graph walk and build call are the scalar reference loops
 * (fvec_inner_product_ref). FastFlat<Base> is a subclass of IndexFlatIP or IndexFlatL2 that
 * overrides the two virtual entry points those paths go through:
 *   - search(): one pass over the stored vectors in blocks, distances by simd_dist_*_many,
 *     the top k kept in FAISS's own heap; honours SearchParameters::sel;
 *   - get_FlatCodesDistanceComputer(): what IndexHNSW (search and add) and IndexIDMap2 use.
 * Everything else (add, remove_ids, reconstruct, write_index, which dynamic_casts to IndexFlat
 * and writes "IxFI"/"IxF2") is inherited, so files are byte for byte FAISS's and any FAISS reads
 * them. store_simd_install swaps the storage of a created or loaded index in place.
 *
 * Shared passes (exact search is memory-bound: one core streams the vectors about as fast as
 * two): concurrent one-query searches on the same FastFlat coalesce. A search that finds a pass
 * slot free (at most RAGD_FLAT_PASSES passes at once, default 1) starts its scan at once, alone;
 * one that arrives while every slot is taken queues. When a pass ends, its leader hands the slot
 * to the oldest queued search, which scans for itself and up to RAGD_FLAT_BATCH - 1 more queued
 * ones: row after row, every query of the batch is compared with the row while it is in cache
 * (simd_dist_*_batch), each query keeping its own heap, k and selector, so the results are
 * exactly those of a lone search (same values per row, rows in the same order). No allocation
 * happens while the queue's lock is held, and a query that throws fails alone.
 */
#include "store_simd_int.h"

#include "ragd/simd.h"

extern "C" {
#include "ragd/metrics.h"
#include "ragd/util.h"
}

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/impl/DistanceComputer.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/utils/Heap.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <new>
#include <typeinfo>

namespace {

using idx_t = faiss::Index::idx_t;

/* Distances in a block of rows are computed together, then merged into the heap: the block
 * (4 KiB of floats) stays in L1 while the kernel streams the vectors. */
constexpr idx_t BLOCK = 1024;

/* Distance from one query (or between two stored vectors) with ragd's kernels. Not thread-safe
 * (FAISS makes one per thread). */
struct FastDistance : faiss::FlatCodesDistanceComputer {
    const float *xb;
    size_t d;
    bool ip;
    const float *q = nullptr;

    FastDistance(const faiss::IndexFlat &index)
            : faiss::FlatCodesDistanceComputer(index.codes.data(), index.code_size),
              xb(index.get_xb()), d(static_cast<size_t>(index.d)),
              ip(index.metric_type == faiss::METRIC_INNER_PRODUCT)
    {
    }

    void set_query(const float *x) override
    {
        q = x;
    }

    float distance_to_code(const uint8_t *code) override
    {
        const float *y = reinterpret_cast<const float *>(code);
        return ip ? simd_dist_ip(q, y, d) : simd_dist_l2sq(q, y, d);
    }

    float symmetric_dis(idx_t i, idx_t j) override
    {
        const float *a = xb + static_cast<size_t>(i) * d, *b = xb + static_cast<size_t>(j) * d;
        return ip ? simd_dist_ip(a, b, d) : simd_dist_l2sq(a, b, d);
    }
};

/* Limits of the shared passes: how many run at once (0: no sharing, every search scans alone)
 * and how many queries one pass serves. Resolved from the environment on first use. */
constexpr int BATCH_CAP = 64;
std::atomic<int> share_passes{-1};
std::atomic<int> share_batch{-1};

/* Returns: the integer in environment variable name, or fallback when unset or not a number in
 * [lo, hi]. */
int env_int(const char *name, int fallback, int lo, int hi)
{
    const char *v = std::getenv(name);
    if (v == nullptr || *v == '\0') return fallback;
    char *end = nullptr;
    long n = std::strtol(v, &end, 10);
    if (*end != '\0' || n < lo || n > hi) return fallback;
    return static_cast<int>(n);
}

/* Returns: the current limits (passes, batch), reading the environment the first time. */
void share_limits(int *passes, int *batch)
{
    static std::once_flag once;
    std::call_once(once, [] {
        /* As many passes at once as the CPUs this process may run on: one pass is one
         * thread's scan. Session 4 chose one pass at a time from in-process runs on a machine
         * whose cores other jobs kept busy (load 7); over HTTP, two passes served concurrency 8
         * 33% more requests/s than one on 2 idle cores and 9% more with both cores busy with
         * other work (bench/NOTES.md, session 7, lead), concurrency 1 unchanged. */
        int expect = -1;
        share_passes.compare_exchange_strong(
            expect, env_int("RAGD_FLAT_PASSES", util_cpus_usable(), 0, 1024));
        expect = -1;
        share_batch.compare_exchange_strong(expect, env_int("RAGD_FLAT_BATCH", 16, 1, BATCH_CAP));
    });
    *passes = share_passes.load();
    *batch = share_batch.load();
}

/* One query of a pass: its own vector, k, output heap and selector, and (when it queued) the
 * state its thread waits on. Lives on the searching thread's stack. */
struct FlatQuery {
    const float *q;
    idx_t k;
    float *dist;
    idx_t *lab;
    const faiss::IDSelector *sel;
    std::exception_ptr error; /* set when this query threw; it is then skipped */
    bool done = false;        /* its results are in dist/lab (or error is set) */
    bool lead = false;        /* it was handed a pass slot: scan batch[0..nbatch) */
    FlatQuery *batch[BATCH_CAP];
    int nbatch = 0;
    FlatQuery *next = nullptr; /* the queue's link */
    std::condition_variable cv;
};

/* The queue of one FastFlat: a FIFO linked through the queued FlatQuery themselves (nothing is
 * allocated). Guarded by mu. */
struct FlatShare {
    std::mutex mu;
    int passes = 0; /* slots taken: passes running or handed to a queued search */
    int hold = 0;   /* > 0: no new pass starts (tests: let a batch build up) */
    FlatQuery *head = nullptr, *tail = nullptr;
    size_t pending = 0;
    uint64_t stat_passes = 0, stat_queries = 0, stat_max_batch = 0;

    void push(FlatQuery *f)
    {
        f->next = nullptr;
        if (tail != nullptr)
            tail->next = f;
        else
            head = f;
        tail = f;
        pending++;
    }

    /* Returns: the oldest queued query, removed from the queue (nullptr when empty). */
    FlatQuery *pop()
    {
        FlatQuery *f = head;
        if (f == nullptr) return nullptr;
        head = f->next;
        if (head == nullptr) tail = nullptr;
        pending--;
        return f;
    }

    /* Fills lead's batch with lead and up to batch - 1 queued queries, oldest first, and counts
     * the pass. Called with mu held; never allocates. */
    void batch_take(FlatQuery *lead, int batch)
    {
        lead->batch[0] = lead;
        lead->nbatch = 1;
        while (lead->nbatch < batch && head != nullptr) lead->batch[lead->nbatch++] = pop();
        stat_passes++;
        stat_queries += static_cast<uint64_t>(lead->nbatch);
        metrics_counter_add(RAGD_METRIC_FLAT_PASSES, 1);
        metrics_counter_add(RAGD_METRIC_FLAT_PASS_SEARCHES, static_cast<uint64_t>(lead->nbatch));
        if (static_cast<uint64_t>(lead->nbatch) > stat_max_batch)
            stat_max_batch = static_cast<uint64_t>(lead->nbatch);
    }

    /* Hands free slots to queued searches (each becomes the leader of the next batch). Called
     * with mu held. Queued searches are drained even if sharing was turned off meanwhile
     * (max_passes 0 counts as 1 here), so none is left waiting. */
    void promote(int max_passes, int batch)
    {
        const int cap = max_passes > 0 ? max_passes : 1;
        while (hold == 0 && passes < cap && head != nullptr) {
            FlatQuery *next = pop();
            batch_take(next, batch);
            next->lead = true;
            passes++;
            next->cv.notify_one();
        }
    }
};

/* Rows per block when a pass serves several queries: their distances to the block (batch x rows
 * floats, 16 KiB at most) are computed row by row (simd_dist_*_batch), then merged into each
 * query's heap. */
constexpr idx_t BATCH_ROWS = 64;

/* Merges the distances of rows j0..j0+n (in row order) into f's heap; a throwing selector sets
 * f's error. */
template <class C>
void heap_merge(FlatQuery *f, const float *dist, idx_t j0, idx_t n)
{
    try {
        for (idx_t j = 0; j < n; j++) {
            if (!C::cmp(f->dist[0], dist[j])) continue;
            if (f->sel && !f->sel->is_member(j0 + j)) continue;
            faiss::heap_replace_top<C>(f->k, f->dist, f->lab, dist[j], j0 + j);
        }
    } catch (...) {
        f->error = std::current_exception();
    }
}

/* One pass over every stored vector for the queries in batch; C is faiss::CMin (inner product:
 * keep the largest) or CMax (L2: keep the smallest). Each query's result is the same as a pass
 * of its own: its distances come from the same kernel row by row and enter its heap in row
 * order. A query that throws (its selector) gets its error and is skipped from then on. */
template <class C>
void scan(const faiss::IndexFlat &index, FlatQuery *const *batch, int nbatch)
{
    const size_t d = static_cast<size_t>(index.d);
    const float *xb = index.get_xb();
    const bool ip = index.metric_type == faiss::METRIC_INNER_PRODUCT;
    for (int b = 0; b < nbatch; b++)
        faiss::heap_heapify<C>(batch[b]->k, batch[b]->dist, batch[b]->lab);
    if (nbatch == 1) {
        /* Alone: one query against a block of rows at a time (the block stays in L1). */
        float block[BLOCK];
        for (idx_t j0 = 0; j0 < index.ntotal && !batch[0]->error; j0 += BLOCK) {
            idx_t n = index.ntotal - j0 < BLOCK ? index.ntotal - j0 : BLOCK;
            const float *rows = xb + static_cast<size_t>(j0) * d;
            if (ip)
                simd_dist_ip_many(batch[0]->q, rows, static_cast<size_t>(n), d, block);
            else
                simd_dist_l2sq_many(batch[0]->q, rows, static_cast<size_t>(n), d, block);
            heap_merge<C>(batch[0], block, j0, n);
        }
    } else {
        const float *qs[BATCH_CAP];
        for (int b = 0; b < nbatch; b++) qs[b] = batch[b]->q;
        float block[BATCH_CAP * BATCH_ROWS];
        for (idx_t j0 = 0; j0 < index.ntotal; j0 += BATCH_ROWS) {
            idx_t n = index.ntotal - j0 < BATCH_ROWS ? index.ntotal - j0 : BATCH_ROWS;
            const float *rows = xb + static_cast<size_t>(j0) * d;
            const size_t nq = static_cast<size_t>(nbatch), nr = static_cast<size_t>(n);
            if (ip)
                simd_dist_ip_batch(qs, nq, rows, nr, d, block);
            else
                simd_dist_l2sq_batch(qs, nq, rows, nr, d, block);
            for (int b = 0; b < nbatch; b++)
                if (!batch[b]->error) heap_merge<C>(batch[b], block + b * n, j0, n);
        }
    }
    for (int b = 0; b < nbatch; b++)
        if (!batch[b]->error) faiss::heap_reorder<C>(batch[b]->k, batch[b]->dist, batch[b]->lab);
}

template <class Base> struct FastFlat : Base {
    explicit FastFlat(idx_t d) : Base(d) {}

    mutable FlatShare share;

    void scan_batch(FlatQuery *const *batch, int nbatch) const
    {
        if (this->metric_type == faiss::METRIC_INNER_PRODUCT)
            scan<faiss::CMin<float, idx_t>>(*this, batch, nbatch);
        else
            scan<faiss::CMax<float, idx_t>>(*this, batch, nbatch);
    }

    /* One query: scans at once when a pass slot is free, else queues and either gets its
     * results from another search's pass or is handed a slot and scans for a batch. */
    void search_shared(FlatQuery *me) const
    {
        int max_passes = 0, batch = 0;
        share_limits(&max_passes, &batch);
        if (max_passes == 0) {
            FlatQuery *one[1] = {me};
            scan_batch(one, 1);
            if (me->error) std::rethrow_exception(me->error);
            return;
        }
        std::unique_lock<std::mutex> lk(share.mu);
        if (share.hold == 0 && share.passes < max_passes) {
            share.passes++;
            share.batch_take(me, batch);
        } else {
            share.push(me);
            me->cv.wait(lk, [me] { return me->done || me->lead; });
            if (me->done) {
                lk.unlock();
                if (me->error) std::rethrow_exception(me->error);
                return;
            }
        }
        lk.unlock();
        scan_batch(me->batch, me->nbatch);
        lk.lock();
        /* The others' FlatQuery live on their stacks until they see done: notify under the
         * lock and do not touch them afterwards. */
        for (int b = 1; b < me->nbatch; b++) {
            me->batch[b]->done = true;
            me->batch[b]->cv.notify_one();
        }
        share.passes--;
        share.promote(max_passes, batch);
        lk.unlock();
        if (me->error) std::rethrow_exception(me->error);
    }

    void search(idx_t n, const float *x, idx_t k, float *distances, idx_t *labels,
                const faiss::SearchParameters *params = nullptr) const override
    {
        FAISS_THROW_IF_NOT(k > 0);
        const faiss::IDSelector *sel = params ? params->sel : nullptr;
        if (n == 1) {
            FlatQuery me;
            me.q = x;
            me.k = k;
            me.dist = distances;
            me.lab = labels;
            me.sel = sel;
            search_shared(&me);
            return;
        }
        /* Several queries in one call (no ragd caller does this): one OpenMP thread per
         * query, each its own pass, as before. */
        std::exception_ptr first;
#pragma omp parallel for if (n > 1)
        for (idx_t i = 0; i < n; i++) {
            FlatQuery one;
            one.q = x + static_cast<size_t>(i) * static_cast<size_t>(this->d);
            one.k = k;
            one.dist = distances + static_cast<size_t>(i) * static_cast<size_t>(k);
            one.lab = labels + static_cast<size_t>(i) * static_cast<size_t>(k);
            one.sel = sel;
            FlatQuery *batch[1] = {&one};
            scan_batch(batch, 1);
            if (one.error) {
#pragma omp critical(ragd_flat_error)
                if (!first) first = one.error;
            }
        }
        if (first) std::rethrow_exception(first);
    }

    faiss::FlatCodesDistanceComputer *get_FlatCodesDistanceComputer() const override
    {
        return new FastDistance(*this);
    }
};

using FastFlatIP = FastFlat<faiss::IndexFlatIP>;
using FastFlatL2 = FastFlat<faiss::IndexFlatL2>;

/* Returns: 1 when index is one of ragd's classes. */
bool is_fast(const faiss::Index *index)
{
    return dynamic_cast<const FastFlatIP *>(index) != nullptr ||
           dynamic_cast<const FastFlatL2 *>(index) != nullptr;
}

/* Returns: a new FastFlat holding old's vectors (moved out of old), or nullptr when old is not a
 * plain IndexFlat of a supported metric. Throws std::bad_alloc (old untouched then). */
faiss::IndexFlat *fast_from(faiss::Index *old)
{
    const std::type_info &t = typeid(*old);
    if (t != typeid(faiss::IndexFlat) && t != typeid(faiss::IndexFlatIP) &&
        t != typeid(faiss::IndexFlatL2))
        return nullptr;
    faiss::IndexFlat *flat = static_cast<faiss::IndexFlat *>(old);
    faiss::IndexFlat *fast = nullptr;
    if (flat->metric_type == faiss::METRIC_INNER_PRODUCT)
        fast = new FastFlatIP(flat->d);
    else if (flat->metric_type == faiss::METRIC_L2)
        fast = new FastFlatL2(flat->d);
    else
        return nullptr;
    fast->codes.swap(flat->codes);
    fast->ntotal = flat->ntotal;
    fast->is_trained = flat->is_trained;
    fast->verbose = flat->verbose;
    fast->metric_arg = flat->metric_arg;
    flat->ntotal = 0;
    return fast;
}

/* Returns: the slot holding index's flat storage and whether its parent owns it; nullptr when
 * the layout is not IndexIDMap2 over IndexFlat or IndexHNSW(IndexFlat). */
faiss::Index **storage_slot(faiss::Index *index, bool *owned)
{
    auto *map = dynamic_cast<faiss::IndexIDMap2 *>(index);
    if (map == nullptr || map->index == nullptr) return nullptr;
    auto *hnsw = dynamic_cast<faiss::IndexHNSW *>(map->index);
    if (hnsw == nullptr) {
        *owned = map->own_fields;
        return &map->index;
    }
    if (hnsw->storage == nullptr) return nullptr;
    *owned = hnsw->own_fields;
    return &hnsw->storage;
}

/* Returns: the pass queue of index's flat storage, or nullptr when it is not ragd's class. */
FlatShare *share_of(const FaissIndex *index)
{
    bool owned = false;
    faiss::Index **slot = storage_slot(
            const_cast<faiss::Index *>(reinterpret_cast<const faiss::Index *>(index)), &owned);
    if (slot == nullptr) return nullptr;
    if (auto *ip = dynamic_cast<FastFlatIP *>(*slot)) return &ip->share;
    if (auto *l2 = dynamic_cast<FastFlatL2 *>(*slot)) return &l2->share;
    return nullptr;
}

} /* namespace */

namespace ragd_simd {
/* Returns: true when index is ragd's flat class (src/store_hnsw_walk.cpp walks HNSW graphs
 * over it with the same kernels its distance computer uses). */
bool is_fast_storage(const faiss::Index *index)
{
    return index != nullptr && is_fast(index);
}
} /* namespace ragd_simd */

int store_simd_install(FaissIndex *index)
{
    if (index == nullptr || simd_level_get() == RAGD_SIMD_OFF) return 0;
    try {
        bool owned = false;
        faiss::Index **slot = storage_slot(reinterpret_cast<faiss::Index *>(index), &owned);
        if (slot == nullptr || !owned || is_fast(*slot)) return 0;
        faiss::IndexFlat *fast = fast_from(*slot);
        if (fast == nullptr) return 0;
        delete *slot;
        *slot = fast;
        return 1;
    } catch (const std::bad_alloc &) {
        return -1;
    } catch (...) {
        return -1;
    }
}

int store_simd_hnsw_ef_construction(FaissIndex *index, int ef_construction)
{
    faiss::Index *p = reinterpret_cast<faiss::Index *>(index);
    auto *map = dynamic_cast<faiss::IndexIDMap2 *>(p);
    auto *hnsw = dynamic_cast<faiss::IndexHNSW *>(map != nullptr ? map->index : p);
    if (hnsw == nullptr || ef_construction <= 0) return 0;
    hnsw->hnsw.efConstruction = ef_construction;
    return 1;
}

int store_simd_installed(const FaissIndex *index)
{
    bool owned = false;
    faiss::Index **slot = storage_slot(
            const_cast<faiss::Index *>(reinterpret_cast<const faiss::Index *>(index)), &owned);
    return slot != nullptr && is_fast(*slot) ? 1 : 0;
}

void store_simd_flat_limits_get(int *passes, int *batch)
{
    share_limits(passes, batch);
}

void store_simd_flat_limits(int passes, int batch)
{
    int cur_passes = 0, cur_batch = 0;
    share_limits(&cur_passes, &cur_batch);
    if (passes >= 0) share_passes.store(passes);
    if (batch >= 1) share_batch.store(batch < BATCH_CAP ? batch : BATCH_CAP);
}

int store_simd_flat_hold(FaissIndex *index, int hold)
{
    FlatShare *share = share_of(index);
    if (share == nullptr) return 0;
    int passes = 0, batch = 0;
    share_limits(&passes, &batch);
    std::lock_guard<std::mutex> lk(share->mu);
    if (hold)
        share->hold++;
    else if (share->hold > 0 && --share->hold == 0)
        share->promote(passes, batch);
    return 1;
}

int store_simd_flat_stats(const FaissIndex *index, store_simd_flat_stat *out)
{
    FlatShare *share = share_of(index);
    if (share == nullptr || out == nullptr) return 0;
    std::lock_guard<std::mutex> lk(share->mu);
    out->pending = share->pending;
    out->passes = share->stat_passes;
    out->queries = share->stat_queries;
    out->max_batch = share->stat_max_batch;
    return 1;
}
