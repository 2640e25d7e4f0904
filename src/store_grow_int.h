/* SPDX-License-Identifier: MIT */
/*
 * store_grow_int.h - growing a FAISS index's storage without a second resident copy
 * (src/store_faiss_grow.cpp). Private to the store module.
 */
#ifndef RAGD_STORE_GROW_INT_H
#define RAGD_STORE_GROW_INT_H

#include <faiss/c_api/Index_c.h>

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Makes room in index (an IndexIDMap2 over an IndexFlat or an IndexHNSW over one, or such an
 * index itself) for n more vectors before they are added: the flat vectors and the HNSW links
 * are moved into blocks of at least twice their size, the old blocks' pages released as they
 * are copied, so the peak is the index plus one slice instead of twice the index. Call with the
 * index's write lock held. Never throws.
 * Returns: 1 done (or nothing needed), 0 another layout (FAISS grows it itself), -1 out of
 * memory (index unchanged; FAISS's own add may still succeed). */
int store_grow_reserve(FaissIndex *index, size_t n);

/* Declared in ragd/store.h (store_grow_huge_pages): whether grown blocks are advised
 * transparent huge pages, off unless a batch process turns it on. */
void store_grow_huge_pages(int on);

/* store_grow_reserve copying slice_bytes between releases (tests use small slices). */
int store_grow_reserve_slices(FaissIndex *index, size_t n, size_t slice_bytes);

#ifdef __cplusplus
}
#endif

#endif
