/* SPDX-License-Identifier: MIT */
/*
 * fuzz_extract.c - libFuzzer target: the text extractors and the chunker on any bytes: markdown
 * with front matter, plain text, HTML, reStructuredText (the first input byte picks the format),
 * then the markdown-aware chunker on what was extracted. Chunks must lie inside the text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ragd/ingest.h"
#include "ragd/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"doc.md", "doc.txt", "doc.html", "doc.rst"};
    if (size == 0) return 0;
    const char *path = names[data[0] % 4];
    ingest_extract_opts xo = {.unknown_as_text = 1, .repair_utf8 = data[0] & 4};
    ingest_doc doc = {0};
    ragd_err err = {0};
    if (ingest_extract_file(path, (const char *)data + 1, size - 1, &xo, &doc, &err) != RAGD_OK) {
        if (err.msg[0] == '\0') abort();
        return 0;
    }
    if (!util_utf8_valid(doc.text, doc.len) || !util_utf8_valid(doc.title, strlen(doc.title)))
        abort();
    ingest_chunk_opts co = {.target_tokens = 64, .max_tokens = 128, .overlap = 0.1,
                            .markdown = doc.markdown};
    ingest_chunk_list chunks = {0};
    if (ingest_doc_split(&doc, &co, &chunks, &err) == RAGD_OK) {
        for (size_t i = 0; i < chunks.count; i++) {
            const ingest_chunk *c = &chunks.items[i];
            if (c->start > c->end || c->end > doc.len || c->heading == NULL) abort();
        }
        ingest_chunk_list_free(&chunks);
    }
    ingest_doc_free(&doc);
    return 0;
}
