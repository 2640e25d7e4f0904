/* SPDX-License-Identifier: MIT */
/*
 * ingest_pdf.c - PDF text extraction with poppler-glib (docs/FORMATS.md has the measurements
 * against MuPDF behind the choice). The document is opened from memory; each page's text layer is
 * taken in reading order, invalid UTF-8 repaired and NUL bytes dropped, and the pages joined with
 * a blank line; the byte offset where each page starts is kept so chunks carry their page number.
 * Pages without a text layer (scanned, image-only) are read by OCR (ingest_ocr.c) as [ingest] ocr
 * says, up to ocr_max_pages per file; OCRed pages keep their page number and are listed, with
 * Tesseract's mean confidence, in the document's metadata and the ingest report. Encrypted,
 * corrupt and text-less PDFs fail with a reason that goes into the report as a per-file error.
 * poppler and glib are loaded on the first PDF (src/optlib.c); a host without them gets a
 * per-file error too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ingest_int.h"
#include "optlib.h"
#include "ragd/ingest.h"
#include "ragd/util.h"

/* Appends s[0..n) to b with NUL bytes dropped and invalid UTF-8 replaced by U+FFFD.
 * Returns: 0 or -1 on OOM. */
static int append_clean(util_buf *b, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t good = util_utf8_first_invalid(s + i, n - i);
        for (size_t k = 0; k < good;) {
            const char *nul = memchr(s + i + k, '\0', good - k);
            size_t run = nul ? (size_t)(nul - (s + i + k)) : good - k;
            if (util_buf_append(b, s + i + k, run) != 0) return -1;
            k += run + (nul ? 1 : 0);
        }
        i += good;
        if (i < n) {
            if (util_buf_append(b, "\xEF\xBF\xBD", 3) != 0) return -1;
            i++;
        }
    }
    return 0;
}

static int has_text(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t' || s[i] == '\f'))
            return 1;
    return 0;
}

/* Writes "1, 3-5" style ranges of the ascending pages into b. */
static void pages_format(util_buf *b, const int *pages, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && pages[j + 1] == pages[j] + 1) j++;
        if (j == i) util_buf_printf(b, "%s%d", b->len ? ", " : "", pages[i]);
        else util_buf_printf(b, "%s%d-%d", b->len ? ", " : "", pages[i], pages[j]);
        i = j + 1;
    }
}

ragd_rc ingest_pdf_extract(const char *path, const char *data, size_t len, ingest_doc *out,
                           ragd_err *err)
{
    return ingest_pdf_extract_ocr(path, data, len, NULL, out, err);
}

ragd_rc ingest_pdf_extract_ocr(const char *path, const char *data, size_t len,
                               const ingest_ocr_opts *ocr, ingest_doc *out, ragd_err *err)
{
    if (len < 5 || memcmp(data, "%PDF-", 5) != 0)
        return ragd_err_set(err, RAGD_ERR_INVALID, "not a PDF file (no %%PDF- header): %s", path);
    ragd_err load_err = {0};
    const optlib_pdf *pdf = optlib_pdf_get(&load_err);
    if (pdf == NULL) return ragd_err_set(err, load_err.rc, "%s: %s", load_err.msg, path);
    GBytes *bytes = pdf->g_bytes_new_static(data, len);
    GError *gerr = NULL;
    PopplerDocument *doc = pdf->poppler_document_new_from_bytes(bytes, NULL, &gerr);
    if (doc == NULL) {
        ragd_rc rc;
        /* POPPLER_ERROR expands to poppler_error_quark(), a call through the table here */
        if (gerr && gerr->domain == pdf->poppler_error_quark() &&
            gerr->code == POPPLER_ERROR_ENCRYPTED)
            rc = ragd_err_set(err, RAGD_ERR_INVALID,
                              "encrypted PDF: a password is required to read it: %s", path);
        else
            rc = ragd_err_set(err, RAGD_ERR_INVALID, "corrupt PDF (%s): %s",
                              gerr && gerr->message ? gerr->message : "cannot be opened", path);
        pdf->g_clear_error(&gerr);
        pdf->g_bytes_unref(bytes);
        return rc;
    }
    ingest_ocr_mode mode = ocr ? ocr->mode : RAGD_OCR_AUTO;
    int max_ocr = ocr && ocr->max_pages >= 0 ? ocr->max_pages : 100;
    int pages = pdf->poppler_document_get_n_pages(doc);
    util_buf b = {0};
    size_t *starts = pages > 0 ? calloc((size_t)pages, sizeof *starts) : NULL;
    int *ocred = pages > 0 ? calloc((size_t)pages, sizeof *ocred) : NULL;
    int *capped = pages > 0 ? calloc((size_t)pages, sizeof *capped) : NULL;
    int *slow = pages > 0 ? calloc((size_t)pages, sizeof *slow) : NULL;
    size_t nocr = 0, ncapped = 0, nslow = 0, nblank = 0;
    long conf_sum = 0;
    ingest_ocr *engine = NULL;
    ragd_err ocr_err = {0};
    int oom = pages > 0 && (!starts || !ocred || !capped || !slow), any = 0;
    for (int i = 0; i < pages && !oom; i++) {
        if (i > 0) oom = util_buf_append(&b, "\n\n", 2) != 0;
        starts[i] = b.len;
        PopplerPage *page = pdf->poppler_document_get_page(doc, i);
        char *text = page ? pdf->poppler_page_get_text(page) : NULL;
        int layer = text != NULL && has_text(text, strlen(text));
        int want = page != NULL && ocr_err.rc == RAGD_OK &&
                   (mode == RAGD_OCR_FORCE || (mode == RAGD_OCR_AUTO && !layer));
        if (want && (int)nocr >= max_ocr) {
            if (!layer) capped[ncapped++] = i + 1;
            want = 0;
        }
        if (want && engine == NULL && (engine = ingest_ocr_new(ocr)) == NULL) oom = 1;
        if (want && engine != NULL) {
            char *read = NULL;
            int conf = 0, timed_out = 0;
            if (ingest_ocr_page(engine, page, path, &read, &conf, &timed_out, &ocr_err) ==
                RAGD_OK) {
                if (timed_out) {
                    slow[nslow++] = i + 1;
                } else if (has_text(read, strlen(read))) {
                    pdf->g_free(text);
                    text = pdf->g_strdup(read);
                    ocred[nocr++] = i + 1;
                    conf_sum += conf;
                } else if (!layer) {
                    nblank++; /* a blank scanned page */
                }
            }
            free(read);
        }
        if (text != NULL) {
            size_t n = strlen(text);
            any |= has_text(text, n);
            /* form feeds between text blocks become blank lines, which the chunker cuts at */
            for (size_t k = 0; k < n; k++)
                if (text[k] == '\f') text[k] = '\n';
            if (!oom) oom = append_clean(&b, text, n) != 0;
        }
        pdf->g_free(text);
        if (page) pdf->g_object_unref(page);
    }
    ingest_ocr_free(engine);
    char *title_meta = pdf->poppler_document_get_title(doc);
    char *author = pdf->poppler_document_get_author(doc);
    pdf->g_object_unref(doc);
    pdf->g_bytes_unref(bytes);

    ragd_rc rc = RAGD_OK;
    if (oom) {
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "extract PDF: out of memory");
    } else if (pages <= 0) {
        rc = ragd_err_set(err, RAGD_ERR_INVALID, "corrupt PDF (no pages): %s", path);
    } else if (!any && ocr_err.rc != RAGD_OK) {
        rc = ragd_err_set(err, ocr_err.rc, "%s", ocr_err.msg);
    } else if (!any && mode == RAGD_OCR_OFF) {
        rc = ragd_err_set(err, RAGD_ERR_INVALID,
                          "PDF has no text layer (%d pages; scanned or image-only?) and [ingest] "
                          "ocr = off: %s", pages, path);
    } else if (!any) {
        rc = ragd_err_set(err, RAGD_ERR_INVALID,
                          "PDF has no text layer and OCR found no text (%d pages: %zu blank, "
                          "%zu over ocr_max_pages, %zu over ocr_page_timeout): %s", pages, nblank,
                          ncapped, nslow, path);
    }
    /* pages left out: said in the report as a warning, the rest of the file is kept */
    util_buf warn = {0};
    if (rc == RAGD_OK && ncapped > 0) {
        util_buf list = {0};
        pages_format(&list, capped, ncapped);
        util_buf_printf(&warn, "pages without text left out (over [ingest] ocr_max_pages = %d): "
                        "%s", max_ocr, list.data ? list.data : "");
        util_buf_free(&list);
    }
    if (rc == RAGD_OK && nslow > 0) {
        util_buf list = {0};
        pages_format(&list, slow, nslow);
        util_buf_printf(&warn, "%spages left out (OCR over [ingest] ocr_page_timeout): %s",
                        warn.len ? "; " : "", list.data ? list.data : "");
        util_buf_free(&list);
    }
    if (rc == RAGD_OK && ocr_err.rc != RAGD_OK)
        util_buf_printf(&warn, "%s%s", warn.len ? "; " : "", ocr_err.msg);
    char *title = NULL;
    json_t *meta = NULL;
    char *meta_text = NULL;
    double confidence = nocr ? (double)conf_sum / (double)nocr : 0.0;
    if (rc == RAGD_OK) {
        int titled = title_meta && util_utf8_valid(title_meta, strlen(title_meta)) &&
                     has_text(title_meta, strlen(title_meta));
        title = titled ? strdup(title_meta) : ingest_path_title(path);
        meta = json_pack("{s:s, s:i}", "format", "pdf", "pages", pages);
        if (meta && author && author[0] && util_utf8_valid(author, strlen(author)))
            json_object_set_new(meta, "author", json_string(author));
        if (meta && nocr > 0) {
            json_t *list = json_array();
            for (size_t i = 0; list && i < nocr; i++) json_array_append_new(list, json_integer(ocred[i]));
            json_object_set_new(meta, "ocr_pages", list ? list : json_array());
            json_object_set_new(meta, "ocr_confidence", json_real(confidence));
        }
        meta_text = meta ? json_dumps(meta, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        if (title == NULL || meta_text == NULL) {
            free(title);
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "extract PDF: out of memory");
        }
    }
    if (rc == RAGD_OK) rc = ingest_doc_fill(out, b.data ? b.data : "", b.len, title, meta_text,
                                            0, err);
    if (rc == RAGD_OK) {
        out->page_starts = starts;
        out->page_count = (size_t)pages;
        starts = NULL;
        if (nocr > 0) {
            out->ocr_pages = ocred;
            out->ocr_page_count = nocr;
            out->ocr_confidence = confidence;
            ocred = NULL;
        }
        if (warn.len > 0) out->warning = util_buf_steal(&warn);
    }
    util_buf_free(&warn);
    json_decref(meta);
    free(meta_text);
    pdf->g_free(title_meta);
    pdf->g_free(author);
    free(starts);
    free(ocred);
    free(capped);
    free(slow);
    util_buf_free(&b);
    return rc;
}
