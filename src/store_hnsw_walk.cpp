/* SPDX-License-Identifier: MIT */
/*
 * store_hnsw_walk.cpp - ragd's own search over a FAISS HNSW graph (see store_hnsw_walk_int.h).
 * FAISS 1.7.3's IndexHNSW::search, for one query, computes one distance per virtual call,
 * prefetches nothing (each neighbour's vector, 1.5 KiB at 384 dims, is a string of cache
 * misses) and allocates and zeroes a visited table of ntotal bytes per call. This file walks the
 * same graph (hnsw.levels, offsets, neighbors, entry_point, max_level) with the same algorithm,
 * step for step (faiss/impl/HNSW.cpp: greedy_update_nearest on the upper levels,
 * search_from_candidates at level 0 with a MinimaxHeap of max(efSearch, k)), so it returns
 * exactly what FAISS returns, and differs only in how it gets there:
 *   - the unvisited neighbours of an expanded node are collected first (marked visited in
 *     order, as FAISS does), their vectors prefetched, then their distances computed and pushed
 *     in the same order;
 *   - visited marks are per thread, by generation: a query bumps an 8-bit counter instead of
 *     zeroing a table (the table, a byte a node, is cleared once every 255 queries; 16-bit
 *     marks cost the daemon twice the RSS per retrieval thread, which an ingest into a 100k
 *     HNSW store put over its budget);
 *   - distances come straight from ragd's kernels (include/ragd/simd.h), the same functions and
 *     argument order as the FastFlat distance computer FAISS would call.
 */
#include "store_hnsw_walk_int.h"

#include "ragd/simd.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/impl/HNSW.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/utils/Heap.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace ragd_simd {
bool is_fast_storage(const faiss::Index *index); /* src/store_faiss_simd.cpp */
}

namespace {

using idx_t = faiss::Index::idx_t;
using storage_idx_t = faiss::HNSW::storage_idx_t;

std::atomic<int> walk_on{-1};

/* Returns: 1 when the walk is on, reading RAGD_HNSW_WALK the first time. */
int walk_enabled()
{
    int on = walk_on.load(std::memory_order_relaxed);
    if (on >= 0) return on;
    const char *v = std::getenv("RAGD_HNSW_WALK");
    int want = (v != nullptr && std::strcmp(v, "0") == 0) ? 0 : 1;
    int expect = -1;
    walk_on.compare_exchange_strong(expect, want);
    return walk_on.load();
}

/* Visited marks of one thread: mark[i] == gen means node i was visited by this query. */
struct Visited {
    std::vector<uint8_t> mark; /* a byte a node, as FAISS's VisitedTable: 100 KiB a thread at 100k */
    uint8_t gen = 0;

    /* Starts a query over n nodes: a new generation (the table is cleared when it wraps). */
    void begin(size_t n)
    {
        if (mark.size() < n) mark.resize(n, 0);
        if (++gen == 0) {
            std::fill(mark.begin(), mark.end(), 0);
            gen = 1;
        }
    }
    bool get(storage_idx_t i) const { return mark[static_cast<size_t>(i)] == gen; }
    void set(storage_idx_t i) { mark[static_cast<size_t>(i)] = gen; }
};

/* FAISS's HNSW::MinimaxHeap, the same operations and tie rules (faiss/impl/HNSW.cpp), over
 * buffers reused by the thread. */
struct Minimax {
    using HC = faiss::CMax<float, storage_idx_t>;
    int n = 0, k = 0, nvalid = 0;
    std::vector<storage_idx_t> ids;
    std::vector<float> dis;

    void reset(int size)
    {
        n = size;
        k = nvalid = 0;
        if (ids.size() < static_cast<size_t>(size)) {
            ids.resize(static_cast<size_t>(size));
            dis.resize(static_cast<size_t>(size));
        }
    }
    void push(storage_idx_t i, float v)
    {
        if (k == n) {
            if (v >= dis[0]) return;
            faiss::heap_pop<HC>(k--, dis.data(), ids.data());
            --nvalid;
        }
        faiss::heap_push<HC>(++k, dis.data(), ids.data(), v, i);
        ++nvalid;
    }
    int size() const { return nvalid; }
    int pop_min(float *vmin_out)
    {
        int i = k - 1;
        while (i >= 0) {
            if (ids[i] != -1) break;
            i--;
        }
        if (i == -1) return -1;
        int imin = i;
        float vmin = dis[i];
        i--;
        while (i >= 0) {
            if (ids[i] != -1 && dis[i] < vmin) {
                vmin = dis[i];
                imin = i;
            }
            i--;
        }
        if (vmin_out) *vmin_out = vmin;
        int ret = ids[imin];
        ids[imin] = -1;
        --nvalid;
        return ret;
    }
    int count_below(float thresh) const
    {
        int n_below = 0;
        for (int i = 0; i < k; i++)
            if (dis[i] < thresh) n_below++;
        return n_below;
    }
};

/* Per-thread scratch of the walk. */
struct Scratch {
    Visited vt;
    Minimax cand;
    std::vector<storage_idx_t> next; /* the unvisited neighbours of the node being expanded */
    std::vector<float> nd;           /* their distances */
};

thread_local Scratch scratch;

/* How much of a neighbour's vector is prefetched ahead (bench/bench_walk, 100k x 384 synthetic
 * and 100k x 1024 real text, ef 16 and 64, interleaved: the first 8 lines beat whole rows, most
 * at 1024 dims (4 KiB rows), and beat the first lines of every neighbour up front, which filled
 * the line-fill buffers: perf showed the stall on the prefetch). */
constexpr size_t PREFETCH_BYTES = 512;

/* The query side of the walk: distances as FAISS's distance computer over ragd's flat storage
 * gives them (inner product negated, as IndexHNSW's NegativeDistanceComputer does). */
struct Query {
    const float *q;
    const float *xb;
    size_t d;
    size_t row_bytes;
    bool ip;

    const float *row(storage_idx_t i) const { return xb + static_cast<size_t>(i) * d; }
    float dist(storage_idx_t i) const
    {
        return ip ? -simd_dist_ip(q, row(i), d) : simd_dist_l2sq(q, row(i), d);
    }
    /* Prefetches the head of row i (at most PREFETCH_BYTES; the hardware streamer follows on
     * from there). */
    void prefetch_row(storage_idx_t i) const
    {
        const char *p = reinterpret_cast<const char *>(row(i));
        const size_t lim = row_bytes < PREFETCH_BYTES ? row_bytes : PREFETCH_BYTES;
        for (size_t off = 0; off < lim; off += 64) __builtin_prefetch(p + off, 0, 3);
    }
    /* Distances of ids[0..n) into out, in order; the rows two ahead are prefetched while one is
     * computed. */
    void dist_many(const storage_idx_t *ids, size_t n, float *out) const
    {
        for (size_t j = 0; j < n && j < 2; j++) prefetch_row(ids[j]);
        for (size_t j = 0; j < n; j++) {
            if (j + 2 < n) prefetch_row(ids[j + 2]);
            out[j] = dist(ids[j]);
        }
    }
};

/* Range of node no's neighbours at level (HNSW::neighbor_range). */
inline void neighbor_range(const faiss::HNSW &h, storage_idx_t no, int level, size_t *b,
                           size_t *e)
{
    size_t o = h.offsets[static_cast<size_t>(no)];
    *b = o + static_cast<size_t>(h.cum_nneighbor_per_level[static_cast<size_t>(level)]);
    *e = o + static_cast<size_t>(h.cum_nneighbor_per_level[static_cast<size_t>(level) + 1]);
}

/* greedy_update_nearest: moves nearest to its closest neighbour at level until none is closer. */
void greedy(const faiss::HNSW &h, const Query &qd, Scratch &s, int level, storage_idx_t &nearest,
            float &d_nearest)
{
    for (;;) {
        storage_idx_t prev = nearest;
        size_t b, e;
        neighbor_range(h, nearest, level, &b, &e);
        s.next.clear();
        for (size_t i = b; i < e; i++) {
            storage_idx_t v = h.neighbors[i];
            if (v < 0) break;
            s.next.push_back(v);
        }
        if (s.nd.size() < s.next.size()) s.nd.resize(s.next.size());
        qd.dist_many(s.next.data(), s.next.size(), s.nd.data());
        for (size_t j = 0; j < s.next.size(); j++) {
            if (s.nd[j] < d_nearest) {
                nearest = s.next[j];
                d_nearest = s.nd[j];
            }
        }
        if (nearest == prev) return;
    }
}

/* search_from_candidates at level 0 with nres_in 0 (the bounded-queue branch of HNSW::search);
 * D/I is the caller's max-heap of k. */
void level0(const faiss::HNSW &h, const Query &qd, Scratch &s, int k, idx_t *I, float *D,
            bool do_dis_check, int efSearch, const faiss::IDSelector *sel)
{
    Minimax &cand = s.cand;
    int nres = 0;
    for (int i = 0; i < cand.size(); i++) {
        idx_t v1 = cand.ids[static_cast<size_t>(i)];
        float d = cand.dis[static_cast<size_t>(i)];
        if (!sel || sel->is_member(v1)) {
            if (nres < k)
                faiss::maxheap_push(++nres, D, I, d, v1);
            else if (d < D[0])
                faiss::maxheap_replace_top(nres, D, I, d, v1);
        }
        s.vt.set(static_cast<storage_idx_t>(v1));
    }
    int nstep = 0;
    while (cand.size() > 0) {
        float d0 = 0;
        int v0 = cand.pop_min(&d0);
        if (do_dis_check && cand.count_below(d0) >= efSearch) break;
        size_t b, e;
        neighbor_range(h, v0, 0, &b, &e);
        s.next.clear();
        for (size_t j = b; j < e; j++) {
            storage_idx_t v1 = h.neighbors[j];
            if (v1 < 0) break;
            if (s.vt.get(v1)) continue;
            s.vt.set(v1);
            s.next.push_back(v1);
        }
        if (s.nd.size() < s.next.size()) s.nd.resize(s.next.size());
        qd.dist_many(s.next.data(), s.next.size(), s.nd.data());
        for (size_t j = 0; j < s.next.size(); j++) {
            storage_idx_t v1 = s.next[j];
            float d = s.nd[j];
            if (!sel || sel->is_member(v1)) {
                if (nres < k)
                    faiss::maxheap_push(++nres, D, I, d, static_cast<idx_t>(v1));
                else if (d < D[0])
                    faiss::maxheap_replace_top(nres, D, I, d, static_cast<idx_t>(v1));
            }
            cand.push(v1, d);
        }
        nstep++;
        if (!do_dis_check && nstep > efSearch) break;
    }
}

/* Returns: the HNSW index the walk covers behind index (itself or the sub-index of an
 * IndexIDMap2; *map set then), or nullptr. */
const faiss::IndexHNSW *covered(const faiss::Index *index, const faiss::IndexIDMap2 **map)
{
    *map = dynamic_cast<const faiss::IndexIDMap2 *>(index);
    const faiss::Index *inner = *map != nullptr ? (*map)->index : index;
    auto *hnsw = dynamic_cast<const faiss::IndexHNSW *>(inner);
    if (hnsw == nullptr || hnsw->storage == nullptr) return nullptr;
    if (hnsw->reconstruct_from_neighbors != nullptr) return nullptr;
    if (hnsw->hnsw.upper_beam != 1 || !hnsw->hnsw.search_bounded_queue) return nullptr;
    if (!ragd_simd::is_fast_storage(hnsw->storage)) return nullptr;
    if (hnsw->metric_type != faiss::METRIC_INNER_PRODUCT && hnsw->metric_type != faiss::METRIC_L2)
        return nullptr;
    if (hnsw->storage->ntotal != hnsw->ntotal ||
        hnsw->hnsw.levels.size() != static_cast<size_t>(hnsw->ntotal))
        return nullptr;
    return hnsw;
}

/* IndexHNSW::search for one query (n == 1), the walk above in place of HNSW::search. */
void walk(const faiss::IndexHNSW &index, const float *x, idx_t k,
          const faiss::SearchParametersHNSW *params, float *D, idx_t *I)
{
    const faiss::HNSW &h = index.hnsw;
    auto *flat = static_cast<const faiss::IndexFlat *>(index.storage);
    Query qd{x, flat->get_xb(), static_cast<size_t>(index.d),
             static_cast<size_t>(index.d) * sizeof(float),
             index.metric_type == faiss::METRIC_INNER_PRODUCT};
    Scratch &s = scratch;
    faiss::maxheap_heapify(k, D, I);
    if (h.entry_point != -1) {
        s.vt.begin(static_cast<size_t>(index.ntotal));
        storage_idx_t nearest = h.entry_point;
        float d_nearest = qd.dist(nearest);
        for (int level = h.max_level; level >= 1; level--)
            greedy(h, qd, s, level, nearest, d_nearest);
        int ki = static_cast<int>(k);
        int ef = std::max(h.efSearch, ki);
        s.cand.reset(ef);
        s.cand.push(nearest, d_nearest);
        bool do_dis_check = params ? params->check_relative_distance : h.check_relative_distance;
        int efSearch = params ? params->efSearch : h.efSearch;
        level0(h, qd, s, ki, I, D, do_dis_check, efSearch, params ? params->sel : nullptr);
    }
    faiss::maxheap_reorder(k, D, I);
    if (qd.ip)
        for (idx_t i = 0; i < k; i++) D[i] = -D[i];
}

} /* namespace */

int store_hnsw_walk_search(const FaissIndex *index, const float *x, int64_t k,
                           const FaissSearchParameters *params, float *distances,
                           int64_t *labels)
{
    if (index == nullptr || x == nullptr || k <= 0 || k > INT32_MAX || !walk_enabled()) return 0;
    if (simd_level_get() == RAGD_SIMD_OFF) return 0;
    try {
        const faiss::IndexIDMap2 *map = nullptr;
        const faiss::IndexHNSW *hnsw = covered(reinterpret_cast<const faiss::Index *>(index), &map);
        if (hnsw == nullptr) return 0;
        auto *p = reinterpret_cast<const faiss::SearchParameters *>(params);
        const faiss::SearchParametersHNSW *hp = nullptr;
        if (p != nullptr) {
            /* FAISS's IndexIDMap2 refuses parameters, IndexHNSW refuses other kinds: let it. */
            hp = dynamic_cast<const faiss::SearchParametersHNSW *>(p);
            if (hp == nullptr || map != nullptr) return 0;
        }
        walk(*hnsw, x, static_cast<idx_t>(k), hp, distances, reinterpret_cast<idx_t *>(labels));
        if (map != nullptr)
            for (int64_t i = 0; i < k; i++)
                if (labels[i] >= 0) labels[i] = map->id_map[static_cast<size_t>(labels[i])];
        return 1;
    } catch (...) {
        return -1;
    }
}

int store_hnsw_walk_enable(int on)
{
    int before = walk_enabled();
    if (on >= 0) walk_on.store(on ? 1 : 0);
    return before;
}
