/* SPDX-License-Identifier: MIT */
/*
 * engine_report.c - the ingest report's "ocr" list: which files had pages read by OCR, which
 * pages, and Tesseract's mean confidence over them (docs/API.md, POST /ingest). Kept apart from
 * engine.c so the pipeline only makes one call per committed file.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ragd/engine.h"

void engine_report_ocr_add(engine_ingest_report *r, const char *source, const ingest_doc *doc)
{
    if (r == NULL || doc == NULL || doc->ocr_page_count == 0) return;
    engine_ocr_note *p = realloc(r->ocr, sizeof *p * (r->ocr_count + 1));
    if (p == NULL) return;
    r->ocr = p;
    engine_ocr_note *n = &p[r->ocr_count];
    n->source = strdup(source);
    n->pages = malloc(sizeof *n->pages * doc->ocr_page_count);
    if (n->source == NULL || n->pages == NULL) {
        free(n->source);
        free(n->pages);
        return;
    }
    memcpy(n->pages, doc->ocr_pages, sizeof *n->pages * doc->ocr_page_count);
    n->page_count = doc->ocr_page_count;
    n->mean_confidence = doc->ocr_confidence;
    r->ocr_count++;
}

void engine_report_ocr_free(engine_ingest_report *r)
{
    if (r == NULL) return;
    for (size_t i = 0; i < r->ocr_count; i++) {
        free(r->ocr[i].source);
        free(r->ocr[i].pages);
    }
    free(r->ocr);
    r->ocr = NULL;
    r->ocr_count = 0;
}

char *engine_report_ocr_json(const engine_ingest_report *r)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < r->ocr_count; i++) {
        json_t *pages = json_array();
        for (size_t k = 0; pages && k < r->ocr[i].page_count; k++)
            json_array_append_new(pages, json_integer(r->ocr[i].pages[k]));
        json_array_append_new(a, json_pack("{s:s, s:o, s:f}", "source", r->ocr[i].source,
                                           "pages", pages ? pages : json_array(),
                                           "mean_confidence", r->ocr[i].mean_confidence));
    }
    char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return s;
}
