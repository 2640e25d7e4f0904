/* SPDX-License-Identifier: MIT */
/*
 * test_optlib.c - the optional libraries loaded on first use (src/optlib.c): poppler and
 * Tesseract are not mapped into a fresh process (the test binary is linked like ragd) and only
 * the first PDF maps poppler, the first OCR load Tesseract; two threads loading a group at once
 * get the same table; every function pointer of both groups is set; a nonexistent soname and a
 * library that lacks a function fail with a message naming them, leaving the output untouched;
 * memory the loaded libraries allocate comes from ASan's allocator (its interceptors apply).
 * The first two tests depend on running first and in this order (cmocka runs them in order).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/optlib.h"
#include "ragd/ingest.h"
#include "ragd/util.h"

/* ASan's allocator query (sanitizer/allocator_interface.h, which gcc 12 does not ship): 1 when p
 * came from ASan's malloc. Unit tests are always built with ASan. */
int __sanitizer_get_ownership(const volatile void *p);

/* Returns: 1 when a file whose name starts with prefix (e.g. "libpoppler-glib.so") is mapped
 * into this process, per /proc/self/maps. */
static int mapped(const char *prefix)
{
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f) != NULL) {
        const char *slash = strrchr(line, '/');
        found = slash != NULL && strncmp(slash + 1, prefix, strlen(prefix)) == 0;
    }
    fclose(f);
    return found;
}

/* Appends a one-page PDF (Helvetica text `text`, or no content at all when text is NULL) with a
 * correct xref table to b. */
static void pdf_make(util_buf *b, const char *text)
{
    char content[256];
    snprintf(content, sizeof content, "BT /F1 12 Tf 20 60 Td (%s) Tj ET", text ? text : "");
    char objects[4][512];
    snprintf(objects[0], sizeof objects[0], "<< /Type /Catalog /Pages 2 0 R >>");
    snprintf(objects[1], sizeof objects[1], "<< /Type /Pages /Kids [3 0 R] /Count 1 >>");
    snprintf(objects[2], sizeof objects[2],
             "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Resources << /Font << /F1 "
             "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> /Contents 4 0 R >>");
    snprintf(objects[3], sizeof objects[3], "<< /Length %zu >>\nstream\n%s\nendstream",
             text ? strlen(content) : (size_t)0, text ? content : "");
    size_t offsets[4];
    util_buf_printf(b, "%%PDF-1.4\n");
    for (int i = 0; i < 4; i++) {
        offsets[i] = b->len;
        util_buf_printf(b, "%d 0 obj\n%s\nendobj\n", i + 1, objects[i]);
    }
    size_t xref = b->len;
    util_buf_printf(b, "xref\n0 5\n0000000000 65535 f \n");
    for (int i = 0; i < 4; i++) util_buf_printf(b, "%010zu 00000 n \n", offsets[i]);
    util_buf_printf(b, "trailer\n<< /Size 5 /Root 1 0 R >>\nstartxref\n%zu\n%%%%EOF\n", xref);
    assert_non_null(b->data);
}

/* Not linked: a fresh process has neither library mapped; a text PDF maps poppler (and gives
 * its text), not Tesseract. */
static void test_pdf_libraries_mapped_on_first_pdf(void **state)
{
    (void)state;
    assert_false(mapped("libpoppler-glib.so"));
    assert_false(mapped("libcairo.so"));
    assert_false(mapped("libtesseract.so"));
    util_buf pdf = {0};
    pdf_make(&pdf, "Quokka ledger seven");
    ingest_doc d = {0};
    ragd_err err = {0};
    assert_int_equal(ingest_pdf_extract("t.pdf", pdf.data, pdf.len, &d, &err), RAGD_OK);
    assert_non_null(strstr(d.text, "Quokka ledger seven"));
    assert_int_equal(d.page_count, 1);
    ingest_doc_free(&d);
    util_buf_free(&pdf);
    assert_true(mapped("libpoppler-glib.so"));
    assert_true(mapped("libcairo.so"));
    assert_false(mapped("libtesseract.so")); /* a text PDF needs no OCR */
}

typedef struct race {
    pthread_barrier_t *start;
    const optlib_ocr *ocr;
    const optlib_pdf *pdf;
    ragd_err err;
} race;

static void *race_run(void *arg)
{
    race *r = arg;
    pthread_barrier_wait(r->start);
    r->ocr = optlib_ocr_get(&r->err);
    r->pdf = optlib_pdf_get(&r->err);
    return NULL;
}

/* Two threads load the OCR group for the first time at once: one table, one load. */
static void test_two_threads_get_one_table(void **state)
{
    (void)state;
    assert_false(mapped("libtesseract.so")); /* this is the OCR group's first load */
    pthread_barrier_t start;
    assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
    race r[2] = {{.start = &start}, {.start = &start}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, race_run, &r[i]), 0);
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(r[i].err.rc, RAGD_OK);
        assert_non_null(r[i].ocr);
        assert_non_null(r[i].pdf);
    }
    assert_ptr_equal(r[0].ocr, r[1].ocr);
    assert_ptr_equal(r[0].pdf, r[1].pdf);
    assert_ptr_equal(r[0].ocr, optlib_ocr_get(NULL));
    assert_true(mapped("libtesseract.so"));
}

/* Every function of both groups is found, and they work. */
static void test_every_pointer_set(void **state)
{
    (void)state;
    ragd_err err = {0};
    const optlib_pdf *pdf = optlib_pdf_get(&err);
    const optlib_ocr *ocr = optlib_ocr_get(&err);
    assert_int_equal(err.rc, RAGD_OK);
    assert_non_null(pdf);
    assert_non_null(ocr);
    size_t n = 0;
#define CHECK_SET(library, function)                                                              \
    do {                                                                                          \
        assert_non_null(table->function);                                                         \
        n++;                                                                                      \
    } while (0);
    const optlib_pdf *table = pdf;
    OPTLIB_PDF_SYMBOLS(CHECK_SET)
    assert_int_equal(n * sizeof(void *), sizeof(optlib_pdf)); /* every field is a listed one */
    n = 0;
    {
        const optlib_ocr *table = ocr;
        OPTLIB_OCR_SYMBOLS(CHECK_SET)
    }
    assert_int_equal(n * sizeof(void *), sizeof(optlib_ocr));
#undef CHECK_SET
    char *copy = pdf->g_strdup("borrowed");
    assert_string_equal(copy, "borrowed");
    /* the dlopen'ed (RTLD_LOCAL) libraries still allocate through ASan's interceptors */
    assert_int_equal(__sanitizer_get_ownership(copy), 1);
    pdf->g_free(copy);
    assert_int_not_equal(pdf->poppler_error_quark(), 0);
    TessBaseAPI *api = ocr->TessBaseAPICreate();
    assert_non_null(api);
    ocr->TessBaseAPIDelete(api);
    /* a fresh load of the same libraries finds the same functions */
    optlib_pdf again;
    assert_int_equal(optlib_load_group_for_test("pdf", NULL, NULL, &again, &err), RAGD_OK);
    assert_memory_equal(&again, pdf, sizeof again);
}

/* Loads group with library's soname replaced by soname, expecting RAGD_ERR_UNSUPPORTED with a
 * message starting with `what` that names the soname (and holds detail, unless NULL), and the
 * output untouched. */
static void expect_unavailable(const char *group, const char *library, const char *soname,
                               const char *what, const char *detail)
{
    union {
        optlib_pdf pdf;
        optlib_ocr ocr;
    } out, before;
    memset(&out, 0xAB, sizeof out);
    before = out;
    ragd_err err = {0};
    assert_int_equal(optlib_load_group_for_test(group, library, soname, &out, &err),
                     RAGD_ERR_UNSUPPORTED);
    if (strncmp(err.msg, what, strlen(what)) != 0 || strstr(err.msg, soname) == NULL ||
        (detail != NULL && strstr(err.msg, detail) == NULL))
        fail_msg("group %s, %s as %s: message \"%s\"", group, library, soname, err.msg);
    assert_memory_equal(&out, &before, sizeof out);
}

/* A library that does not exist: the group fails, naming it. */
static void test_missing_library(void **state)
{
    (void)state;
    expect_unavailable("pdf", "cairo", "libragd-no-such-cairo.so.2", "PDF support unavailable: ",
                       NULL);
    expect_unavailable("ocr", "tesseract", "libragd-no-tess.so.5", "OCR unavailable: ", NULL);
    /* unknown names are the caller's mistake */
    optlib_pdf pdf;
    ragd_err err = {0};
    assert_int_equal(optlib_load_group_for_test("pdf", "nope", "libm.so.6", &pdf, &err),
                     RAGD_ERR_INVALID);
    ragd_err_clear(&err);
    assert_int_equal(optlib_load_group_for_test("zip", NULL, NULL, &pdf, &err), RAGD_ERR_INVALID);
}

/* A library that loads but lacks the group's functions (libm for glib, libz for Tesseract): the
 * message names the library and the first function missing. */
static void test_missing_symbol(void **state)
{
    (void)state;
    expect_unavailable("pdf", "glib", "libm.so.6", "PDF support unavailable: ",
                       "undefined symbol: g_");
    expect_unavailable("ocr", "tesseract", "libz.so.1", "OCR unavailable: ",
                       "undefined symbol: Tess");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* these two first: they check what a fresh process has mapped */
        cmocka_unit_test(test_pdf_libraries_mapped_on_first_pdf),
        cmocka_unit_test(test_two_threads_get_one_table),
        cmocka_unit_test(test_every_pointer_set),
        cmocka_unit_test(test_missing_library),
        cmocka_unit_test(test_missing_symbol),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
