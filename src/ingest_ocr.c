/* SPDX-License-Identifier: MIT */
/*
 * ingest_ocr.c - the text of scanned (image-only) PDF pages: poppler renders the page into a cairo
 * image surface at [ingest] ocr_dpi, the pixels become 8-bit grey, and Tesseract (its C API,
 * tesseract/capi.h) reads them with [ingest] ocr_languages under a per-page deadline. One
 * Tesseract engine is loaded per file, the first time a page needs it, and is used by one ingest
 * worker only (the engine is not shared between threads). Runs in the ingest path only: no HTTP
 * request thread ever waits on it. docs/FORMATS.md "Scanned PDFs" has the details. Tesseract is
 * loaded (src/optlib.c) the first time a page needs OCR, so text PDFs never load it; a host
 * without it gets "OCR unavailable" like one without the language data.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_int.h"
#include "optlib.h"
#include "ragd/util.h"

#define OCR_MAX_PIXELS (60L * 1000 * 1000) /* larger renders are scaled down to this */

struct ingest_ocr {
    const optlib_pdf *pdf; /* NULL until the first page, like the rest */
    const optlib_ocr *tess;
    TessBaseAPI *api;   /* NULL until the first page */
    ETEXT_DESC *monitor;
    char languages[128];
    int dpi;
    int timeout_ms;
    int failed;         /* Init failed once: do not retry on every page */
};

ingest_ocr_mode ingest_ocr_mode_parse(const char *s)
{
    if (s != NULL && strcmp(s, "off") == 0) return RAGD_OCR_OFF;
    if (s != NULL && strcmp(s, "force") == 0) return RAGD_OCR_FORCE;
    return RAGD_OCR_AUTO;
}

ingest_ocr *ingest_ocr_new(const ingest_ocr_opts *o)
{
    ingest_ocr *x = calloc(1, sizeof *x);
    if (x == NULL) return NULL;
    snprintf(x->languages, sizeof x->languages, "%s",
             o && o->languages && o->languages[0] ? o->languages : "eng");
    x->dpi = o && o->dpi > 0 ? o->dpi : 300;
    x->timeout_ms = o && o->page_timeout_ms > 0 ? o->page_timeout_ms : 60000;
    return x;
}

void ingest_ocr_free(ingest_ocr *x)
{
    if (x == NULL) return;
    if (x->api) {
        x->tess->TessBaseAPIEnd(x->api);
        x->tess->TessBaseAPIDelete(x->api);
    }
    if (x->monitor) x->tess->TessMonitorDelete(x->monitor);
    free(x);
}

/* Loads the engine on first use. Returns: RAGD_OK or RAGD_ERR_UNSUPPORTED (Tesseract or the
 * language data missing). */
static ragd_rc ocr_start(ingest_ocr *x, const char *path, ragd_err *err)
{
    if (x->api != NULL) return RAGD_OK;
    if (x->failed)
        return ragd_err_set(err, RAGD_ERR_UNSUPPORTED, "OCR unavailable (languages %s): %s",
                            x->languages, path);
    ragd_err load_err = {0};
    if ((x->pdf = optlib_pdf_get(&load_err)) == NULL ||
        (x->tess = optlib_ocr_get(&load_err)) == NULL) {
        x->failed = 1;
        return ragd_err_set(err, load_err.rc, "%s; scanned pages cannot be read: %s",
                            load_err.msg, path);
    }
    x->api = x->tess->TessBaseAPICreate();
    x->monitor = x->tess->TessMonitorCreate();
    if (x->api == NULL || x->monitor == NULL) {
        x->failed = 1;
        return ragd_err_set(err, RAGD_ERR_NOMEM, "OCR: out of memory");
    }
    /* NULL datapath: TESSDATA_PREFIX or the Debian default (/usr/share/tesseract-ocr/5) */
    if (x->tess->TessBaseAPIInit3(x->api, NULL, x->languages) != 0) {
        x->tess->TessBaseAPIDelete(x->api);
        x->api = NULL;
        x->failed = 1;
        return ragd_err_set(err, RAGD_ERR_UNSUPPORTED,
                            "OCR language data for '%s' is not installed (Debian: "
                            "tesseract-ocr-<lang>); scanned pages cannot be read: %s",
                            x->languages, path);
    }
    x->tess->TessBaseAPISetPageSegMode(x->api, PSM_AUTO);
    return RAGD_OK;
}

ragd_rc ingest_ocr_page(ingest_ocr *x, PopplerPage *page, const char *path, char **text,
                        int *confidence, int *timed_out, ragd_err *err)
{
    *timed_out = 0;
    *text = NULL;
    *confidence = 0;
    ragd_rc rc = ocr_start(x, path, err);
    if (rc != RAGD_OK) return rc;
    double wpt = 0, hpt = 0;
    x->pdf->poppler_page_get_size(page, &wpt, &hpt);
    double scale = x->dpi / 72.0;
    if (wpt <= 0 || hpt <= 0 || wpt > 20000 || hpt > 20000)
        return ragd_err_set(err, RAGD_ERR_INVALID, "PDF page size %.0fx%.0f pt not renderable: %s",
                            wpt, hpt, path);
    while (scale > 0.1 && (wpt * scale) * (hpt * scale) > (double)OCR_MAX_PIXELS) scale *= 0.8;
    int w = (int)(wpt * scale + 0.5), h = (int)(hpt * scale + 0.5);
    if (w < 1) w = 1;
    if (h < 1) h = 1;
    cairo_surface_t *surface = x->pdf->cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (x->pdf->cairo_surface_status(surface) != CAIRO_STATUS_SUCCESS) {
        x->pdf->cairo_surface_destroy(surface);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "OCR: cannot allocate a %dx%d page image", w, h);
    }
    cairo_t *cr = x->pdf->cairo_create(surface);
    x->pdf->cairo_set_source_rgb(cr, 1, 1, 1);
    x->pdf->cairo_paint(cr);
    x->pdf->cairo_scale(cr, scale, scale);
    x->pdf->poppler_page_render_for_printing(page, cr);
    x->pdf->cairo_destroy(cr);
    x->pdf->cairo_surface_flush(surface);
    const unsigned char *px = x->pdf->cairo_image_surface_get_data(surface);
    int stride = x->pdf->cairo_image_surface_get_stride(surface);
    unsigned char *grey = malloc((size_t)w * (size_t)h);
    if (grey == NULL) {
        x->pdf->cairo_surface_destroy(surface);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "OCR: out of memory");
    }
    for (int y = 0; y < h; y++) {
        const uint32_t *row = (const uint32_t *)(px + (size_t)y * (size_t)stride);
        for (int i = 0; i < w; i++) {
            uint32_t p = row[i]; /* xRGB in native endianness */
            unsigned r = (p >> 16) & 0xff, g = (p >> 8) & 0xff, b = p & 0xff;
            grey[(size_t)y * (size_t)w + (size_t)i] = (unsigned char)((r * 299 + g * 587 + b * 114) / 1000);
        }
    }
    x->pdf->cairo_surface_destroy(surface);
    x->tess->TessBaseAPISetImage(x->api, grey, w, h, 1, w);
    x->tess->TessBaseAPISetSourceResolution(x->api, (int)(72.0 * scale + 0.5));
    x->tess->TessMonitorSetDeadlineMSecs(x->monitor, x->timeout_ms);
    double t0 = util_now_ms();
    int recognized = x->tess->TessBaseAPIRecognize(x->api, x->monitor);
    double spent = util_now_ms() - t0;
    char *out = NULL;
    if (spent >= x->timeout_ms) {
        *timed_out = 1; /* the monitor stopped it: what it has is a partial page */
    } else if (recognized != 0) {
        rc = ragd_err_set(err, RAGD_ERR_INVALID, "OCR failed on a page: %s", path);
    } else {
        char *t = x->tess->TessBaseAPIGetUTF8Text(x->api);
        *confidence = x->tess->TessBaseAPIMeanTextConf(x->api);
        out = t ? strdup(t) : strdup("");
        x->tess->TessDeleteText(t);
        if (out == NULL) rc = ragd_err_set(err, RAGD_ERR_NOMEM, "OCR: out of memory");
    }
    x->tess->TessBaseAPIClear(x->api);
    free(grey);
    if (rc == RAGD_OK) *text = out;
    else free(out);
    return rc;
}
