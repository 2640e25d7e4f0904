/* SPDX-License-Identifier: MIT */
/*
 * store_faiss_capi.cpp - the part of the official FAISS C API (the headers in faiss/c_api/) that
 * src/store_index.c calls, implemented over the C++ library. Debian 12's libfaiss-dev ships the
 * C API headers but its libfaiss.a holds none of their symbols, so the Makefile builds this file
 * whenever no system libfaiss_c exists. The signatures come from the upstream headers (included
 * here, so the compiler checks them; they also supply the extern "C"). Behaviour follows the
 * upstream c_api sources: every call that can throw catches the exception, keeps its message for
 * faiss_get_last_error() in thread-local storage, and returns -2 (FaissException), -4 (other
 * std::exception) or -1 (anything else). Nothing here is ragd-specific. The few functions that
 * Debian's 1.7.3 headers lack (search parameters, IDSelectorNot) are declared with upstream's
 * signatures in src/store_faiss_int.h.
 */
#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

#include "store_faiss_int.h"

#include <faiss/AutoTune.h>
#include <faiss/Index.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexIDMap.h>
#include <faiss/impl/HNSW.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

#include <exception>
#include <string>

namespace {

/* The message of the last failure on this thread; faiss_get_last_error() returns last_error,
 * which points into last_error_message or at a static string, or is NULL before any failure. */
thread_local std::string last_error_message;
thread_local const char *last_error = nullptr;

int error_record(const char *message, int code) noexcept
{
    try {
        last_error_message = message ? message : "Unknown error";
        last_error = last_error_message.c_str();
    } catch (...) {
        /* No memory left to copy the message: a static one still tells the caller why. */
        last_error = "out of memory while recording a FAISS error";
    }
    return code;
}

/* Runs body, translating exceptions to upstream's negative codes. Returns: 0 or the code. */
template <typename Body> int guarded(Body body) noexcept
{
    try {
        body();
        return 0;
    } catch (const faiss::FaissException &e) {
        return error_record(e.what(), FAISS_EXCEPT);
    } catch (const std::exception &e) {
        return error_record(e.what(), STD_EXCEPT);
    } catch (...) {
        return error_record("Unknown error", UNKNOWN_EXCEPT);
    }
}

faiss::Index *as_index(FaissIndex *p)
{
    return reinterpret_cast<faiss::Index *>(p);
}

const faiss::Index *as_index(const FaissIndex *p)
{
    return reinterpret_cast<const faiss::Index *>(p);
}

} /* namespace */

const char *faiss_get_last_error()
{
    return last_error;
}

/* ----- Index ------------------------------------------------------------------------------- */

void faiss_Index_free(FaissIndex *obj)
{
    delete as_index(obj);
}

int faiss_Index_d(const FaissIndex *obj)
{
    return as_index(obj)->d;
}

idx_t faiss_Index_ntotal(const FaissIndex *obj)
{
    return as_index(obj)->ntotal;
}

int faiss_Index_is_trained(const FaissIndex *obj)
{
    return as_index(obj)->is_trained;
}

FaissMetricType faiss_Index_metric_type(const FaissIndex *obj)
{
    return static_cast<FaissMetricType>(as_index(obj)->metric_type);
}

int faiss_Index_add_with_ids(FaissIndex *index, idx_t n, const float *x, const idx_t *xids)
{
    return guarded([&] { as_index(index)->add_with_ids(n, x, xids); });
}

int faiss_Index_search(const FaissIndex *index, idx_t n, const float *x, idx_t k,
                       float *distances, idx_t *labels)
{
    return guarded([&] { as_index(index)->search(n, x, k, distances, labels); });
}

int faiss_Index_reset(FaissIndex *index)
{
    return guarded([&] { as_index(index)->reset(); });
}

int faiss_Index_remove_ids(FaissIndex *index, const FaissIDSelector *sel, size_t *n_removed)
{
    return guarded([&] {
        size_t removed =
            as_index(index)->remove_ids(*reinterpret_cast<const faiss::IDSelector *>(sel));
        if (n_removed) *n_removed = removed;
    });
}

int faiss_Index_search_with_params(const FaissIndex *index, idx_t n, const float *x, idx_t k,
                                   const FaissSearchParameters *params, float *distances,
                                   idx_t *labels)
{
    return guarded([&] {
        as_index(index)->search(n, x, k, distances, labels,
                                reinterpret_cast<const faiss::SearchParameters *>(params));
    });
}

/* ----- SearchParameters -------------------------------------------------------------------- */

void faiss_SearchParameters_free(FaissSearchParameters *obj)
{
    delete reinterpret_cast<faiss::SearchParameters *>(obj);
}

int faiss_SearchParametersHNSW_new_with(FaissSearchParametersHNSW **p_sp, FaissIDSelector *sel,
                                        int efSearch)
{
    return guarded([&] {
        faiss::SearchParametersHNSW *sp = new faiss::SearchParametersHNSW;
        sp->sel = reinterpret_cast<faiss::IDSelector *>(sel);
        sp->efSearch = efSearch;
        *p_sp = reinterpret_cast<FaissSearchParametersHNSW *>(
                static_cast<faiss::SearchParameters *>(sp));
    });
}

/* ----- index_factory and ParameterSpace ---------------------------------------------------- */

int faiss_index_factory(FaissIndex **p_index, int d, const char *description,
                        FaissMetricType metric)
{
    return guarded([&] {
        faiss::Index *out =
                faiss::index_factory(d, description, static_cast<faiss::MetricType>(metric));
        *p_index = reinterpret_cast<FaissIndex *>(out);
    });
}

int faiss_ParameterSpace_new(FaissParameterSpace **space)
{
    return guarded([&] {
        faiss::ParameterSpace *out = new faiss::ParameterSpace();
        *space = reinterpret_cast<FaissParameterSpace *>(out);
    });
}

void faiss_ParameterSpace_free(FaissParameterSpace *obj)
{
    delete reinterpret_cast<faiss::ParameterSpace *>(obj);
}

int faiss_ParameterSpace_set_index_parameter(const FaissParameterSpace *space, FaissIndex *index,
                                             const char *name, double value)
{
    return guarded([&] {
        reinterpret_cast<const faiss::ParameterSpace *>(space)->set_index_parameter(
                as_index(index), name, value);
    });
}

/* ----- IndexFlatIP ------------------------------------------------------------------------- */

int faiss_IndexFlatIP_new_with(FaissIndexFlatIP **p_index, idx_t d)
{
    return guarded([&] {
        faiss::IndexFlatIP *out = new faiss::IndexFlatIP(d);
        *p_index = reinterpret_cast<FaissIndexFlatIP *>(static_cast<faiss::Index *>(out));
    });
}

FaissIndexFlatIP *faiss_IndexFlatIP_cast(FaissIndex *index)
{
    /* read_index builds an IndexFlatIP for "IxFI", so the exact-class cast works after a load. */
    faiss::IndexFlatIP *flat = dynamic_cast<faiss::IndexFlatIP *>(as_index(index));
    if (!flat) return nullptr;
    return reinterpret_cast<FaissIndexFlatIP *>(static_cast<faiss::Index *>(flat));
}

/* ----- IndexIDMap2 ------------------------------------------------------------------------- */

int faiss_IndexIDMap2_new(FaissIndexIDMap2 **p_index, FaissIndex *index)
{
    return guarded([&] {
        faiss::IndexIDMap2 *out = new faiss::IndexIDMap2(as_index(index));
        *p_index = reinterpret_cast<FaissIndexIDMap2 *>(static_cast<faiss::Index *>(out));
    });
}

static faiss::IndexIDMap2 *as_idmap2(FaissIndexIDMap2 *p)
{
    return static_cast<faiss::IndexIDMap2 *>(reinterpret_cast<faiss::Index *>(p));
}

void faiss_IndexIDMap2_set_own_fields(FaissIndexIDMap2 *obj, int own)
{
    as_idmap2(obj)->own_fields = own != 0;
}

FaissIndexIDMap2 *faiss_IndexIDMap2_cast(FaissIndex *index)
{
    faiss::IndexIDMap2 *map = dynamic_cast<faiss::IndexIDMap2 *>(as_index(index));
    if (!map) return nullptr;
    return reinterpret_cast<FaissIndexIDMap2 *>(static_cast<faiss::Index *>(map));
}

void faiss_IndexIDMap2_id_map(FaissIndexIDMap2 *index, idx_t **p_id_map, size_t *p_size)
{
    faiss::IndexIDMap2 *map = as_idmap2(index);
    if (p_id_map) *p_id_map = map->id_map.data();
    if (p_size) *p_size = map->id_map.size();
}

FaissIndex *faiss_IndexIDMap2_sub_index(FaissIndexIDMap2 *index)
{
    return reinterpret_cast<FaissIndex *>(as_idmap2(index)->index);
}

/* ----- IDSelector -------------------------------------------------------------------------- */

void faiss_IDSelector_free(FaissIDSelector *obj)
{
    delete reinterpret_cast<faiss::IDSelector *>(obj);
}

int faiss_IDSelectorBatch_new(FaissIDSelectorBatch **p_sel, size_t n, const idx_t *indices)
{
    return guarded([&] {
        faiss::IDSelectorBatch *sel = new faiss::IDSelectorBatch(n, indices);
        *p_sel = reinterpret_cast<FaissIDSelectorBatch *>(static_cast<faiss::IDSelector *>(sel));
    });
}

int faiss_IDSelectorNot_new(FaissIDSelectorNot **p_sel, const FaissIDSelector *sel)
{
    return guarded([&] {
        faiss::IDSelectorNot *out =
                new faiss::IDSelectorNot(reinterpret_cast<const faiss::IDSelector *>(sel));
        *p_sel = reinterpret_cast<FaissIDSelectorNot *>(static_cast<faiss::IDSelector *>(out));
    });
}

/* ----- I/O --------------------------------------------------------------------------------- */

int faiss_write_index(const FaissIndex *idx, FILE *f)
{
    return guarded([&] { faiss::write_index(as_index(idx), f); });
}

int faiss_read_index(FILE *f, int io_flags, FaissIndex **p_out)
{
    return guarded([&] {
        faiss::Index *out = faiss::read_index(f, io_flags);
        *p_out = reinterpret_cast<FaissIndex *>(out);
    });
}
