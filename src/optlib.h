/* SPDX-License-Identifier: MIT */
/*
 * optlib.h - the optional libraries ragd loads on first use with dlopen instead of linking them:
 * the PDF group (poppler-glib, gobject, glib, cairo: src/ingest_pdf.c, src/ingest_ocr.c) and the
 * OCR group (Tesseract's C API: src/ingest_ocr.c). Linking them cost every ragd process ~30 ms of
 * dynamic loading before main() (bench/NOTES.md, session 7 part A) although only PDF files need
 * them. The symbol lists below are the one place each function is named; src/optlib.c names the
 * libraries (their sonames come from the build, see the Makefile). Each function pointer has the
 * type of the real prototype from the library's own header, so a wrong signature does not compile.
 * Internal to ragd (not in include/ragd/).
 */
#ifndef RAGD_OPTLIB_H
#define RAGD_OPTLIB_H

#include <cairo.h>
#include <glib-object.h>
#include <glib.h>
#include <poppler.h>
#include <tesseract/capi.h>

#include "ragd/ragd.h"

/* X(library, function): each function of the PDF group and the library (an OPTLIB_PDF_LIBS key
 * in src/optlib.c) it is looked up in. poppler_error_quark is what POPPLER_ERROR expands to. */
#define OPTLIB_PDF_SYMBOLS(X)                                                                     \
    X(poppler_glib, poppler_document_new_from_bytes)                                              \
    X(poppler_glib, poppler_document_get_n_pages)                                                 \
    X(poppler_glib, poppler_document_get_page)                                                    \
    X(poppler_glib, poppler_document_get_title)                                                   \
    X(poppler_glib, poppler_document_get_author)                                                  \
    X(poppler_glib, poppler_page_get_text)                                                        \
    X(poppler_glib, poppler_page_get_size)                                                        \
    X(poppler_glib, poppler_page_render_for_printing)                                             \
    X(poppler_glib, poppler_error_quark)                                                          \
    X(gobject, g_object_unref)                                                                    \
    X(glib, g_bytes_new_static)                                                                   \
    X(glib, g_bytes_unref)                                                                        \
    X(glib, g_clear_error)                                                                        \
    X(glib, g_free)                                                                               \
    X(glib, g_strdup)                                                                             \
    X(cairo, cairo_image_surface_create)                                                          \
    X(cairo, cairo_image_surface_get_data)                                                        \
    X(cairo, cairo_image_surface_get_stride)                                                      \
    X(cairo, cairo_surface_status)                                                                \
    X(cairo, cairo_surface_flush)                                                                 \
    X(cairo, cairo_surface_destroy)                                                               \
    X(cairo, cairo_create)                                                                        \
    X(cairo, cairo_destroy)                                                                       \
    X(cairo, cairo_set_source_rgb)                                                                \
    X(cairo, cairo_paint)                                                                         \
    X(cairo, cairo_scale)

/* X(library, function): the OCR group, Tesseract's C API (tesseract/capi.h). */
#define OPTLIB_OCR_SYMBOLS(X)                                                                     \
    X(tesseract, TessBaseAPICreate)                                                               \
    X(tesseract, TessBaseAPIDelete)                                                               \
    X(tesseract, TessBaseAPIEnd)                                                                  \
    X(tesseract, TessBaseAPIInit3)                                                                \
    X(tesseract, TessBaseAPISetPageSegMode)                                                       \
    X(tesseract, TessBaseAPISetImage)                                                             \
    X(tesseract, TessBaseAPISetSourceResolution)                                                  \
    X(tesseract, TessBaseAPIRecognize)                                                            \
    X(tesseract, TessBaseAPIGetUTF8Text)                                                          \
    X(tesseract, TessBaseAPIMeanTextConf)                                                         \
    X(tesseract, TessBaseAPIClear)                                                                \
    X(tesseract, TessDeleteText)                                                                  \
    X(tesseract, TessMonitorCreate)                                                               \
    X(tesseract, TessMonitorDelete)                                                               \
    X(tesseract, TessMonitorSetDeadlineMSecs)

#define OPTLIB_FIELD(library, function) __typeof__(&function) function;

/* The PDF group's functions; call as pdf->poppler_page_get_text(page). */
typedef struct optlib_pdf {
    OPTLIB_PDF_SYMBOLS(OPTLIB_FIELD)
} optlib_pdf;

/* The OCR group's functions; call as ocr->TessBaseAPICreate(). */
typedef struct optlib_ocr {
    OPTLIB_OCR_SYMBOLS(OPTLIB_FIELD)
} optlib_ocr;

/* Returns: the PDF group, loaded on the first call (thread-safe, once per process; the libraries
 * are never closed), borrowed for the life of the process. NULL when a library or function is
 * missing: err is RAGD_ERR_UNSUPPORTED, "PDF support unavailable: <the loader's reason>", and
 * every later call fails the same way. */
const optlib_pdf *optlib_pdf_get(ragd_err *err);

/* Returns: the OCR group (Tesseract) like optlib_pdf_get; the error reads "OCR unavailable:
 * <the loader's reason>". Loaded only when a page really needs OCR. */
const optlib_ocr *optlib_ocr_get(ragd_err *err);

/* FOR TESTS ONLY (tests/unit/test_optlib.c): loads group "pdf" (out: an optlib_pdf) or "ocr"
 * (out: an optlib_ocr) the way the accessors do, but afresh and without the once-per-process
 * cache, with the soname of the group's library `library` (an OPTLIB_PDF_LIBS/OPTLIB_OCR_LIBS
 * key, e.g. "glib") replaced by `soname` when both are non-NULL. A nonexistent soname, or one
 * that lacks a function of the table, fails. Returns: RAGD_OK and out filled; else
 * RAGD_ERR_UNSUPPORTED with the message the accessor would give, out untouched
 * (RAGD_ERR_INVALID for an unknown group or library key). Libraries opened stay open. */
ragd_rc optlib_load_group_for_test(const char *group, const char *library, const char *soname,
                                   void *out, ragd_err *err);

#endif
