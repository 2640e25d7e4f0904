/* SPDX-License-Identifier: MIT */
/*
 * pdf_compare.c - the measurement behind ragd's PDF library choice (docs/FORMATS.md): extracts the
 * text of each PDF given on the command line with poppler-glib and with MuPDF, several times, and
 * prints per library the best wall time, pages, characters, and text-quality counters: tokens
 * longer than 25 bytes (words glued together: lost spaces), U+FFFD replacement characters,
 * unexpanded ligatures (U+FB00..U+FB06) and hyphen-broken line ends ("-\n"). Optionally writes the
 * text of each library to OUTDIR/<name>.<lib>.txt for reading side by side.
 * Build: make bench/pdf_compare (not part of ragd). Usage: pdf_compare [-o OUTDIR] file.pdf ...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>
#include <mupdf/fitz.h>
#include <poppler.h>

#define RUNS 3

typedef struct text {
    char *s;
    size_t len, cap;
    int pages;
} text;

static void text_add(text *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->s = realloc(t->s, t->cap);
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = '\0';
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int run_poppler(const char *data, size_t len, text *t)
{
    GBytes *bytes = g_bytes_new_static(data, len);
    GError *gerr = NULL;
    PopplerDocument *doc = poppler_document_new_from_bytes(bytes, NULL, &gerr);
    if (doc == NULL) {
        g_clear_error(&gerr);
        g_bytes_unref(bytes);
        return -1;
    }
    int n = poppler_document_get_n_pages(doc);
    for (int i = 0; i < n; i++) {
        PopplerPage *page = poppler_document_get_page(doc, i);
        char *s = page ? poppler_page_get_text(page) : NULL;
        if (s) text_add(t, s, strlen(s));
        text_add(t, "\f", 1);
        g_free(s);
        if (page) g_object_unref(page);
    }
    t->pages = n;
    g_object_unref(doc);
    g_bytes_unref(bytes);
    return 0;
}

static int run_mupdf(const char *data, size_t len, text *t)
{
    fz_context *ctx = fz_new_context(NULL, NULL, FZ_STORE_UNLIMITED);
    if (ctx == NULL) return -1;
    int rc = 0;
    fz_stream *stm = NULL;
    fz_document *doc = NULL;
    fz_var(stm);
    fz_var(doc);
    fz_try(ctx) {
        fz_register_document_handlers(ctx);
        stm = fz_open_memory(ctx, (const unsigned char *)data, len);
        doc = fz_open_document_with_stream(ctx, "application/pdf", stm);
        int n = fz_count_pages(ctx, doc);
        for (int i = 0; i < n; i++) {
            fz_stext_page *sp = NULL;
            fz_buffer *buf = NULL;
            fz_var(sp);
            fz_var(buf);
            fz_try(ctx) {
                sp = fz_new_stext_page_from_page_number(ctx, doc, i, NULL);
                buf = fz_new_buffer_from_stext_page(ctx, sp);
                unsigned char *p = NULL;
                size_t bl = fz_buffer_storage(ctx, buf, &p);
                text_add(t, (const char *)p, bl);
                text_add(t, "\f", 1);
            }
            fz_always(ctx) {
                fz_drop_buffer(ctx, buf);
                fz_drop_stext_page(ctx, sp);
            }
            fz_catch(ctx) { fz_rethrow(ctx); }
        }
        t->pages = n;
    }
    fz_always(ctx) {
        fz_drop_document(ctx, doc);
        fz_drop_stream(ctx, stm);
    }
    fz_catch(ctx) { rc = -1; }
    fz_drop_context(ctx);
    return rc;
}

static void quality(const text *t, long *long_tokens, long *tokens, long *fffd, long *lig,
                    long *hyph)
{
    *long_tokens = *tokens = *fffd = *lig = *hyph = 0;
    size_t run = 0;
    for (size_t i = 0; i <= t->len; i++) {
        unsigned char c = i < t->len ? (unsigned char)t->s[i] : ' ';
        if (c == ' ' || c == '\n' || c == '\t' || c == '\f' || c == '\r') {
            if (run > 0) (*tokens)++;
            if (run > 25) (*long_tokens)++;
            run = 0;
        } else {
            run++;
        }
        if (i + 2 < t->len && memcmp(t->s + i, "\xEF\xBF\xBD", 3) == 0) (*fffd)++;
        if (i + 2 < t->len && (unsigned char)t->s[i] == 0xEF && (unsigned char)t->s[i + 1] == 0xAC &&
            (unsigned char)t->s[i + 2] <= 0x86)
            (*lig)++;
        if (i + 1 < t->len && t->s[i] == '-' && t->s[i + 1] == '\n' && i > 0 && t->s[i - 1] >= 'a' &&
            t->s[i - 1] <= 'z')
            (*hyph)++;
    }
}

int main(int argc, char **argv)
{
    const char *outdir = NULL;
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "-o") == 0) {
        outdir = argv[2];
        first = 3;
    }
    printf("%-28s %-8s %6s %9s %9s %8s %7s %5s %5s %6s\n", "file", "lib", "pages", "ms(best)",
           "chars", "tokens", "glued", "fffd", "lig", "hyph-");
    for (int a = first; a < argc; a++) {
        FILE *f = fopen(argv[a], "rb");
        if (!f) continue;
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *data = malloc((size_t)n);
        if (fread(data, 1, (size_t)n, f) != (size_t)n) n = 0;
        fclose(f);
        const char *base = strrchr(argv[a], '/') ? strrchr(argv[a], '/') + 1 : argv[a];
        for (int lib = 0; lib < 2; lib++) {
            double best = 1e18;
            text t = {0};
            int ok = 0;
            for (int r = 0; r < RUNS; r++) {
                free(t.s);
                memset(&t, 0, sizeof t);
                double t0 = now_ms();
                ok = (lib == 0 ? run_poppler(data, (size_t)n, &t) : run_mupdf(data, (size_t)n, &t)) == 0;
                double dt = now_ms() - t0;
                if (dt < best) best = dt;
            }
            long lt, tok, fffd, lig, hyph;
            quality(&t, &lt, &tok, &fffd, &lig, &hyph);
            printf("%-28.28s %-8s %6d %9.1f %9zu %8ld %7ld %5ld %5ld %6ld%s\n", base,
                   lib ? "mupdf" : "poppler", t.pages, best, t.len, tok, lt, fffd, lig, hyph,
                   ok ? "" : " FAILED");
            if (outdir && t.s) {
                char p[4096];
                snprintf(p, sizeof p, "%s/%s.%s.txt", outdir, base, lib ? "mupdf" : "poppler");
                FILE *o = fopen(p, "wb");
                if (o) {
                    fwrite(t.s, 1, t.len, o);
                    fclose(o);
                }
            }
            free(t.s);
        }
        free(data);
    }
    return 0;
}
