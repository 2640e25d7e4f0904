/* SPDX-License-Identifier: MIT */
/*
 * ingest_pdf.c - PDF text extraction with poppler-glib (docs/FORMATS.md has the measurements
 * against MuPDF behind the choice). The document is opened from memory; each page's text layer is
 * taken in reading order, invalid UTF-8 repaired and NUL bytes dropped, and the pages joined with
 * a blank line; the byte offset where each page starts is kept so chunks carry their page number.
 * Encrypted (password-protected), corrupt and text-less (scanned, image-only) PDFs fail with a
 * reason that goes into the ingest report as a per-file error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <jansson.h>
#include <poppler.h>

#include "ingest_int.h"
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

ragd_rc ingest_pdf_extract(const char *path, const char *data, size_t len, ingest_doc *out,
                           ragd_err *err)
{
    if (len < 5 || memcmp(data, "%PDF-", 5) != 0)
        return ragd_err_set(err, RAGD_ERR_INVALID, "not a PDF file (no %%PDF- header): %s", path);
    GBytes *bytes = g_bytes_new_static(data, len);
    GError *gerr = NULL;
    PopplerDocument *doc = poppler_document_new_from_bytes(bytes, NULL, &gerr);
    if (doc == NULL) {
        ragd_rc rc;
        if (gerr && gerr->domain == POPPLER_ERROR && gerr->code == POPPLER_ERROR_ENCRYPTED)
            rc = ragd_err_set(err, RAGD_ERR_INVALID,
                              "encrypted PDF: a password is required to read it: %s", path);
        else
            rc = ragd_err_set(err, RAGD_ERR_INVALID, "corrupt PDF (%s): %s",
                              gerr && gerr->message ? gerr->message : "cannot be opened", path);
        g_clear_error(&gerr);
        g_bytes_unref(bytes);
        return rc;
    }
    int pages = poppler_document_get_n_pages(doc);
    util_buf b = {0};
    size_t *starts = pages > 0 ? calloc((size_t)pages, sizeof *starts) : NULL;
    int oom = pages > 0 && starts == NULL, any = 0;
    for (int i = 0; i < pages && !oom; i++) {
        if (i > 0) oom = util_buf_append(&b, "\n\n", 2) != 0;
        starts[i] = b.len;
        PopplerPage *page = poppler_document_get_page(doc, i);
        char *text = page ? poppler_page_get_text(page) : NULL;
        if (text != NULL) {
            size_t n = strlen(text);
            any |= has_text(text, n);
            /* form feeds between text blocks become blank lines, which the chunker cuts at */
            for (size_t k = 0; k < n; k++)
                if (text[k] == '\f') text[k] = '\n';
            if (!oom) oom = append_clean(&b, text, n) != 0;
        }
        g_free(text);
        if (page) g_object_unref(page);
    }
    char *title_meta = poppler_document_get_title(doc);
    char *author = poppler_document_get_author(doc);
    g_object_unref(doc);
    g_bytes_unref(bytes);

    ragd_rc rc = RAGD_OK;
    if (oom) {
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "extract PDF: out of memory");
    } else if (pages <= 0) {
        rc = ragd_err_set(err, RAGD_ERR_INVALID, "corrupt PDF (no pages): %s", path);
    } else if (!any) {
        rc = ragd_err_set(err, RAGD_ERR_INVALID,
                          "PDF has no text layer (%d pages; scanned or image-only?); OCR is not "
                          "supported: %s", pages, path);
    }
    char *title = NULL;
    json_t *meta = NULL;
    char *meta_text = NULL;
    if (rc == RAGD_OK) {
        int titled = title_meta && util_utf8_valid(title_meta, strlen(title_meta)) &&
                     has_text(title_meta, strlen(title_meta));
        title = titled ? strdup(title_meta) : ingest_path_title(path);
        meta = json_pack("{s:s, s:i}", "format", "pdf", "pages", pages);
        if (meta && author && author[0] && util_utf8_valid(author, strlen(author)))
            json_object_set_new(meta, "author", json_string(author));
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
    }
    json_decref(meta);
    free(meta_text);
    g_free(title_meta);
    g_free(author);
    free(starts);
    util_buf_free(&b);
    return rc;
}
