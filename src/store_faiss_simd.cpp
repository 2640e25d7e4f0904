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
 */
#include "store_simd_int.h"

#include "ragd/simd.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/impl/DistanceComputer.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/utils/Heap.h>

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

/* One query against every stored vector; C is faiss::CMin (inner product: keep the largest) or
 * CMax (L2: keep the smallest). */
template <class C>
void search_one(const faiss::IndexFlat &index, const float *q, idx_t k, float *dist, idx_t *lab,
                const faiss::IDSelector *sel)
{
    const size_t d = static_cast<size_t>(index.d);
    const float *xb = index.get_xb();
    const bool ip = index.metric_type == faiss::METRIC_INNER_PRODUCT;
    faiss::heap_heapify<C>(k, dist, lab);
    float block[BLOCK];
    for (idx_t j0 = 0; j0 < index.ntotal; j0 += BLOCK) {
        idx_t n = index.ntotal - j0 < BLOCK ? index.ntotal - j0 : BLOCK;
        const float *rows = xb + static_cast<size_t>(j0) * d;
        if (ip)
            simd_dist_ip_many(q, rows, static_cast<size_t>(n), d, block);
        else
            simd_dist_l2sq_many(q, rows, static_cast<size_t>(n), d, block);
        for (idx_t j = 0; j < n; j++) {
            if (!C::cmp(dist[0], block[j])) continue;
            if (sel && !sel->is_member(j0 + j)) continue;
            faiss::heap_replace_top<C>(k, dist, lab, block[j], j0 + j);
        }
    }
    faiss::heap_reorder<C>(k, dist, lab);
}

template <class Base> struct FastFlat : Base {
    explicit FastFlat(idx_t d) : Base(d) {}

    void search(idx_t n, const float *x, idx_t k, float *distances, idx_t *labels,
                const faiss::SearchParameters *params = nullptr) const override
    {
        FAISS_THROW_IF_NOT(k > 0);
        const faiss::IDSelector *sel = params ? params->sel : nullptr;
        const bool ip = this->metric_type == faiss::METRIC_INNER_PRODUCT;
        /* One OpenMP thread per query batch row; ragd searches one query per call and limits
         * each calling thread to one OpenMP thread, so this loop is serial there. */
#pragma omp parallel for if (n > 1)
        for (idx_t i = 0; i < n; i++) {
            const float *q = x + static_cast<size_t>(i) * static_cast<size_t>(this->d);
            float *di = distances + static_cast<size_t>(i) * static_cast<size_t>(k);
            idx_t *li = labels + static_cast<size_t>(i) * static_cast<size_t>(k);
            if (ip)
                search_one<faiss::CMin<float, idx_t>>(*this, q, k, di, li, sel);
            else
                search_one<faiss::CMax<float, idx_t>>(*this, q, k, di, li, sel);
        }
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

} /* namespace */

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
