/* SPDX-License-Identifier: MIT */
/*
 * store_faiss_int.h - the parts of the upstream FAISS C API that ragd calls but Debian 12's
 * faiss/c_api headers (FAISS 1.7.3) predate: search parameters with an id selector
 * (upstream Index_c.h, IndexHNSW_c.h), the negating id selector (upstream
 * impl/AuxIndexStructures_c.h). Declared here with upstream's names and signatures, so that a
 * newer system libfaiss_c satisfies them and src/store_faiss_capi.cpp implements them otherwise.
 * Private to the store module.
 */
#ifndef RAGD_STORE_FAISS_INT_H
#define RAGD_STORE_FAISS_INT_H

#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/faiss_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Parameters of one search; upstream's FAISS_DECLARE_CLASS(SearchParameters). */
typedef struct FaissSearchParameters_H FaissSearchParameters;
/* Upstream's FAISS_DECLARE_CLASS_INHERITED(SearchParametersHNSW, SearchParameters). */
typedef struct FaissSearchParameters_H FaissSearchParametersHNSW;
/* Upstream's FAISS_DECLARE_CLASS_INHERITED(IDSelectorNot, IDSelector). */
typedef struct FaissIDSelector_H FaissIDSelectorNot;

/* Frees search parameters (upstream FAISS_DECLARE_DESTRUCTOR(SearchParameters)). */
void faiss_SearchParameters_free(FaissSearchParameters *obj);

/* HNSW search parameters: only ids sel accepts are returned (sel borrowed, may be NULL), with
 * the given efSearch. */
int faiss_SearchParametersHNSW_new_with(FaissSearchParametersHNSW **p_sp, FaissIDSelector *sel,
                                        int efSearch);

/* faiss_Index_search with per-search parameters (params may be NULL). */
int faiss_Index_search_with_params(const FaissIndex *index, idx_t n, const float *x, idx_t k,
                                   const FaissSearchParameters *params, float *distances,
                                   idx_t *labels);

/* Selects the ids sel does not select (sel borrowed; it must outlive the new selector). */
int faiss_IDSelectorNot_new(FaissIDSelectorNot **p_sel, const FaissIDSelector *sel);

#ifdef __cplusplus
}
#endif

#endif
