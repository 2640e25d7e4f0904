/* SPDX-License-Identifier: MIT */
/*
 * store_faiss_grow.cpp - an index grows without holding its vectors twice. FAISS keeps a flat
 * index's vectors in one std::vector (IndexFlatCodes::codes) and an HNSW graph's links in
 * another (HNSW::neighbors). When an add outgrows their capacity, std::vector allocates a larger
 * block, copies everything and only then frees the old one: for a moment both are resident. A
 * loaded index has no spare capacity, so the first ingest after a start doubled the daemon's
 * peak RSS (1M x 384 Flat: 1.53 -> 3.0 GB for an add of one chunk).
 * store_grow_reserve grows them before FAISS adds: it reserves the larger block (address space
 * only: untouched pages are not resident), copies the old contents in slices, and returns each
 * slice's whole pages to the kernel (madvise MADV_DONTNEED) as soon as it is copied, so the
 * peak is the vectors plus one slice. The caller holds the index's write lock (nothing reads
 * the old block while it is emptied). In a batch process that asked for it
 * (store_grow_huge_pages: the CLI ingest), a large new block is advised to use transparent huge
 * pages (advise_huge): filling it then takes a fault per 2 MiB instead of per 4 KiB.
 */
#include "store_grow_int.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <new>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

namespace {

/* Bytes copied between two releases of the old block's pages. */
constexpr size_t SLICE_BYTES = 8u << 20;

/* Bytes of a transparent huge page (x86-64, arm64 with 4 KiB pages). */
constexpr uintptr_t HUGE_BYTES = 2u << 20;

/* Whether grown blocks are advised huge pages: off in the daemon, whose RSS has a budget that
 * the partly filled 2 MiB page of each grown block (flat vectors, HNSW links) can cross (HNSW32
 * 100k x 384 while an ingest ran: 266.4 MiB against 265.7; bench/NOTES.md session 4, lead). */
std::atomic<int> huge_pages{0};

/* Asks for transparent huge pages over the whole huge pages inside [p, p + bytes), when there
 * are at least two: the block is filled front to back as vectors are added, and each first touch
 * of a 4 KiB page costs a page fault (most of an ingest's kernel time in a VM; bench/NOTES.md,
 * session 4 part B: ingest CPU x0.88). Only touched huge pages become resident, so RSS grows by
 * at most the one partly filled huge page. Advice only: a kernel without THP ignores it. */
void advise_huge(void *p, size_t bytes)
{
    uintptr_t a = ((uintptr_t)p + HUGE_BYTES - 1) & ~(HUGE_BYTES - 1);
    uintptr_t e = ((uintptr_t)p + bytes) & ~(HUGE_BYTES - 1);
    if (huge_pages.load(std::memory_order_relaxed) && e > a && e - a >= 2 * HUGE_BYTES)
        madvise((void *)a, e - a, MADV_HUGEPAGE);
}

/* Grows v's capacity to at least cap: a new block, the old contents copied slice by slice, each
 * copied slice's whole pages of the old block released at once. v's contents are unchanged.
 * Throws std::bad_alloc before anything is changed when the block cannot be had; nothing after
 * the reservation can fail. */
template <typename T>
void grow(std::vector<T> &v, size_t cap, size_t slice_bytes)
{
    if (v.capacity() >= cap) return;
    std::vector<T> bigger;
    bigger.reserve(cap);
    advise_huge(bigger.data(), cap * sizeof(T));
    const size_t n = v.size();
    const size_t step = std::max<size_t>(1, slice_bytes / sizeof(T));
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const T *old = v.data();
    /* The old block's first and last partial pages (where an allocator keeps its own headers)
     * are never released: only the whole pages inside [old, old + n). */
    uintptr_t released = ((uintptr_t)old + page - 1) & ~(page - 1);
    for (size_t off = 0; off < n; off += step) {
        size_t m = std::min(step, n - off);
        bigger.insert(bigger.end(), old + off, old + off + m); /* within capacity: no throw */
        uintptr_t done = (uintptr_t)(old + off + m) & ~(page - 1);
        if (done > released) {
            madvise((void *)released, done - released, MADV_DONTNEED);
            released = done;
        }
    }
    v.swap(bigger); /* the emptied block is freed with bigger */
}

/* The capacity to grow to when size elements must reach need: at least twice the current size,
 * so that a run of small adds copies the vectors O(log n) times. */
size_t target(size_t size, size_t need)
{
    return std::max(need, size * 2);
}

} /* namespace */

int store_grow_reserve_slices(FaissIndex *index, size_t n, size_t slice_bytes)
{
    faiss::Index *p = reinterpret_cast<faiss::Index *>(index);
    auto *map = dynamic_cast<faiss::IndexIDMap2 *>(p);
    faiss::Index *inner = map != nullptr ? map->index : p;
    auto *hnsw = dynamic_cast<faiss::IndexHNSW *>(inner);
    auto *flat = dynamic_cast<faiss::IndexFlatCodes *>(hnsw != nullptr ? hnsw->storage : inner);
    if (flat == nullptr || n == 0) return 0;
    try {
        size_t need = (size_t)(flat->ntotal + (faiss::Index::idx_t)n) * flat->code_size;
        if (flat->codes.capacity() < need)
            grow(flat->codes, target(flat->codes.size(), need), slice_bytes);
        if (hnsw != nullptr && hnsw->ntotal > 0) {
            /* Links per vector vary with its level; twice the mean is a generous bound. */
            std::vector<faiss::HNSW::storage_idx_t> &links = hnsw->hnsw.neighbors;
            size_t per = 2 * (links.size() / (size_t)hnsw->ntotal + 1);
            size_t need_links = links.size() + n * per;
            if (links.capacity() < need_links)
                grow(links, target(links.size(), need_links), slice_bytes);
        }
        return 1;
    } catch (...) { /* std::bad_alloc: the block could not be had; the index is unchanged */
        return -1;
    }
}

int store_grow_reserve(FaissIndex *index, size_t n)
{
    return store_grow_reserve_slices(index, n, SLICE_BYTES);
}

void store_grow_huge_pages(int on)
{
    huge_pages.store(on != 0, std::memory_order_relaxed);
}
