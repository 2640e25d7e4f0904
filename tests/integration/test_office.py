# SPDX-License-Identifier: MIT
"""
test_office.py - the documents teams keep: a folder of Word (.docx), OpenDocument (.odt),
spreadsheets (.xlsx, .ods, .csv) and a scanned PDF (picture-only page, read by OCR), all
generated here with known text (officegen.py, scangen.py), next to hostile ones (zip bomb, a zip
bomb whose headers lie, billion laughs + XXE, an encrypted Office file, a truncated archive).
Checks headings, tables, sheets with their header row, OCR pages and confidence in the report,
the per-file errors, that nothing hostile reaches the store, and that an unchanged scan is not
OCRed twice; then [ingest] ocr = off and ocr_max_pages.
"""
import io
import os
import struct
import zipfile

from harness import check, eq, fixture, shared, short, test, write
from officegen import (billion_laughs_docx, docx_bytes, hidden_doctype_docx, ods_bytes, odt_bytes,
                       ole_encrypted, xlsx_bytes, zip_bomb_docx, zipcrypto_flagged)
from scangen import scanned_pdf_bytes

POLICY = [
    ("h1", "Travel policy"),
    ("p", "Employees book second class trains for trips under four hours."),
    ("h2", "Meals abroad"),
    ("li", "Breakfast is covered by the hotel rate", 0),
    ("li", "Dinner is reimbursed up to forty euros", 1),
    ("p", "Receipts are scanned into the expense tool."),
    ("table", [["Grade", "Hotel cap"], ["Junior", "120 EUR"], ["Senior", "185 EUR"]]),
    ("deleted", "obsolete kumquat allowance"),
]

ONBOARDING = [
    ("h1", "Onboarding"),
    ("p", "New staff receive a laptop and a walrus badge on day one."),
    ("h2", "Accounts"),
    ("li", "Email"),
    ("li", "Chat"),
    ("table", [["System", "Owner"], ["Payroll", "Finance"]]),
]

PLANS = [("Plans", [["Plan", "Monthly price", "Seats"], ["Starter", "9 EUR", 1],
                    ["Team", "49 EUR", 10], ["Enterprise", "custom quote", 500]]),
         ("Discounts", [["Code", "Percent"], ["SPRING", 15]])]

STOCK = [("Warehouse", [["Item", "Count"], ["Pallets", 42], [None, None], ["Crates", 7]])]

SCAN = [("text", ["Facilities manual, cover page."]),
        ("scan", ["Parking permits are renewed every", "January at the security desk.",
                  "A lost badge costs fifteen euros."]),
        ("blank",)]


def lying_bomb():
    """A .docx whose document.xml inflates to 100 MiB while its headers claim 1000 bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open("word/document.xml", "w") as f:
            block = b" " * (1 << 20)
            for _ in range(100):
                f.write(block)
    data = bytearray(buf.getvalue())
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, 1000)
    struct.pack_into("<I", data, central + 24, 1000)
    return bytes(data)


@fixture("office")
def office_fixture(ctx):
    docs = ctx.path("docs")
    write(os.path.join(docs, "policy.docx"), docx_bytes(POLICY, title="Travel Policy 2024",
                                                        localized_headings=True))
    write(os.path.join(docs, "onboarding.odt"), odt_bytes(ONBOARDING, title="Onboarding notes"))
    write(os.path.join(docs, "plans.xlsx"), xlsx_bytes(PLANS))
    write(os.path.join(docs, "stock.ods"), ods_bytes(STOCK, title="Stock list"))
    write(os.path.join(docs, "staff.csv"),
          'Name,Role,Desk\nAda,"Engineer, lead",4F\nBob,Clerk,"2B ""north"""\n')
    write(os.path.join(docs, "facilities.pdf"), scanned_pdf_bytes(SCAN, title="Facilities"))
    write(os.path.join(docs, "bomb.docx"), zip_bomb_docx())
    write(os.path.join(docs, "liar.docx"), lying_bomb())
    write(os.path.join(docs, "laughs.docx"), billion_laughs_docx())
    write(os.path.join(docs, "hidden.docx"), hidden_doctype_docx())
    write(os.path.join(docs, "locked.xlsx"), ole_encrypted())
    write(os.path.join(docs, "zipcrypto.xlsx"), zipcrypto_flagged(xlsx_bytes(PLANS)))
    whole = xlsx_bytes(PLANS)
    write(os.path.join(docs, "truncated.xlsx"), whole[: len(whole) // 2])
    write(os.path.join(docs, "notaword.docx"), b"plain text pretending to be a Word file\n")
    d = ctx.serve()
    return {"d": d, "docs": docs, "state": {}}


GOOD = ["facilities.pdf", "onboarding.odt", "plans.xlsx", "policy.docx", "staff.csv",
        "stock.ods"]
BAD = ["bomb.docx", "hidden.docx", "laughs.docx", "liar.docx", "locked.xlsx", "notaword.docx",
       "truncated.xlsx", "zipcrypto.xlsx"]


@shared("office")
def office_folder_ingest_and_errors(t, fx):
    d = fx["d"]
    rep = d.ingest(fx["docs"])
    fx["state"]["report"] = rep
    eq(rep["documents"]["added"], len(GOOD), "documents added (%s)" % short(rep["errors"]))
    errors = {e["source"]: e for e in rep["errors"]}
    eq(sorted(errors), BAD, "failed files")
    eq(errors["bomb.docx"]["code"], "too_large", "zip bomb code")
    check("zip bomb" in errors["bomb.docx"]["message"], "bomb: %s" % errors["bomb.docx"])
    check("zip bomb" in errors["liar.docx"]["message"] or
          "corrupt" in errors["liar.docx"]["message"] or
          "not well-formed" in errors["liar.docx"]["message"],
          "lying bomb: %s" % errors["liar.docx"])
    check("DOCTYPE" in errors["laughs.docx"]["message"], "laughs: %s" % errors["laughs.docx"])
    check("DOCTYPE" in errors["hidden.docx"]["message"], "hidden: %s" % errors["hidden.docx"])
    check("encrypted" in errors["locked.xlsx"]["message"], "locked: %s" % errors["locked.xlsx"])
    check("encrypted zip entry" in errors["zipcrypto.xlsx"]["message"],
          "zipcrypto: %s" % errors["zipcrypto.xlsx"])
    check("truncated" in errors["truncated.xlsx"]["message"],
          "truncated: %s" % errors["truncated.xlsx"])
    check("not a zip" in errors["notaword.docx"]["message"], "notaword: %s"
          % errors["notaword.docx"])
    ocr = rep["ocr"]
    eq([o["source"] for o in ocr], ["facilities.pdf"], "ocr list (%s)" % short(ocr))
    eq(ocr[0]["pages"], [2], "OCRed pages (page 1 has a text layer, page 3 is blank)")
    check(60 <= ocr[0]["mean_confidence"] <= 100, "mean confidence %s" % ocr[0])
    lst = d.call("GET", "/documents?limit=100").json
    eq(lst["counts"]["files"], len(GOOD), "only the good files are in the store")


@shared("office")
def office_docx_headings_tables_title(t, fx):
    ans = fx["d"].retrieve({"query": "hotel cap for a senior employee", "k": 3})
    top = ans["results"][0]
    eq(top["source"], "policy.docx", "top source (%s)" % short(ans["results"]))
    eq(top["title"], "Travel Policy 2024", "title from docProps/core.xml")
    eq(top["heading"], "Travel policy > Meals abroad", "heading path from heading styles")
    check("| Senior | 185 EUR |" in top["text"], "table row kept: %r" % top["text"])
    check("- Breakfast is covered by the hotel rate" in top["text"] and
          "  - Dinner is reimbursed" in top["text"], "list items: %r" % top["text"])
    ans = fx["d"].retrieve({"query": "kumquat allowance", "k": 5, "mode": "keyword"})
    check(all("kumquat" not in r["text"] for r in ans["results"]), "deleted text indexed")


@shared("office")
def office_odt_headings(t, fx):
    ans = fx["d"].retrieve({"query": "walrus badge on day one", "k": 3})
    top = ans["results"][0]
    eq(top["source"], "onboarding.odt", "top source (%s)" % short(ans["results"]))
    eq(top["title"], "Onboarding notes", "title from meta.xml")
    eq(top["heading"], "Onboarding", "heading from text:h")
    ans = fx["d"].retrieve({"query": "who owns payroll", "k": 3})
    hit = [r for r in ans["results"] if r["source"] == "onboarding.odt"]
    check(hit and hit[0]["heading"] == "Onboarding > Accounts" and
          "| Payroll | Finance |" in hit[0]["text"], "odt table: %s" % short(ans["results"]))


@shared("office")
def office_sheets_rows_with_header(t, fx):
    ans = fx["d"].retrieve({"query": "what does the Team plan cost per month?", "k": 3})
    top = ans["results"][0]
    eq(top["source"], "plans.xlsx", "top source (%s)" % short(ans["results"]))
    eq(top["heading"], "Plans", "sheet name is the heading")
    check("Plan: Team; Monthly price: 49 EUR; Seats: 10" in top["text"],
          "row with its column names: %r" % top["text"])
    check("SPRING" not in top["text"], "sheets are separate chunk groups: %r" % top["text"])
    ans = fx["d"].retrieve({"query": "SPRING discount percent", "k": 3})
    eq((ans["results"][0]["source"], ans["results"][0]["heading"]), ("plans.xlsx", "Discounts"),
       "second sheet (%s)" % short(ans["results"]))
    ans = fx["d"].retrieve({"query": "how many pallets are in the warehouse", "k": 3})
    top = ans["results"][0]
    eq((top["source"], top["heading"], top["title"]), ("stock.ods", "Warehouse", "Stock list"),
       "ods sheet")
    check("Item: Pallets; Count: 42" in top["text"], "ods row: %r" % top["text"])
    ans = fx["d"].retrieve({"query": "which desk does Bob sit at", "k": 3})
    top = ans["results"][0]
    eq(top["source"], "staff.csv", "csv source (%s)" % short(ans["results"]))
    check('Name: Bob; Role: Clerk; Desk: 2B "north"' in top["text"] and
          "Role: Engineer, lead" in top["text"], "csv quoting: %r" % top["text"])


@shared("office")
def office_scanned_page_cited(t, fx):
    ans = fx["d"].retrieve({"query": "when are parking permits renewed", "k": 3})
    top = ans["results"][0]
    eq((top["source"], top["page"]), ("facilities.pdf", 2), "OCRed page (%s)"
       % short(ans["results"]))
    check("security desk" in top["text"], "OCR text: %r" % top["text"])
    eq(top["metadata"].get("ocr_pages"), [2], "metadata.ocr_pages")
    check(ans["context"].startswith("[1] facilities.pdf p.2"), "context: %r" % ans["context"][:60])


@shared("office")
def office_unchanged_scan_not_ocred_again(t, fx):
    rep = fx["d"].ingest(fx["docs"])
    eq(rep["documents"]["unchanged"], len(GOOD), "unchanged documents")
    eq(rep["ocr"], [], "no OCR on the second ingest")


@test
def office_ocr_off_and_page_cap(t):
    docs = t.path("docs")
    write(os.path.join(docs, "scan.pdf"), scanned_pdf_bytes(
        [("scan", ["The boiler is serviced every October."]),
         ("scan", ["The roof terrace closes at dusk."])]))
    r = t.cli("ingest", "--path", docs, "--data-dir", t.path("off"), "--json",
              env={"RAGD_INGEST_OCR": "off"}, timeout=300)
    eq(r.rc, 3, "exit code with a per-file error: %r" % r)
    errs = r.json()["errors"]
    check(len(errs) == 1 and "ocr = off" in errs[0]["message"], "ocr off: %s" % short(errs))
    r = t.cli("ingest", "--path", docs, "--data-dir", t.path("cap"), "--json",
              env={"RAGD_INGEST_OCR_MAX_PAGES": "1"}, timeout=300)
    eq(r.rc, 0, "capped ingest: %r" % r)
    rep = r.json()
    eq(rep["ocr"][0]["pages"], [1], "only the first page OCRed")
    check(any("ocr_max_pages" in w["message"] and "2" in w["message"] for w in rep["warnings"]),
          "page 2 reported as left out: %s" % short(rep["warnings"]))
    q = t.cli("query", "boiler serviced", "--data-dir", t.path("cap"), "--json", timeout=120)
    top = q.json()["results"][0]
    eq(top["page"], 1, "page kept")
    check("October" in top["text"], "OCR text: %r" % top["text"])
    # force: a page with a text layer is OCRed too (its text read from the picture of it)
    forced = t.path("forced")
    write(os.path.join(forced, "mixed.pdf"), scanned_pdf_bytes(
        [("text", ["The loading dock opens at seven."]), ("scan", ["Visitors sign in at reception."])]))
    r = t.cli("ingest", "--path", forced, "--data-dir", t.path("force"), "--json",
              env={"RAGD_INGEST_OCR": "force"}, timeout=300)
    eq(r.rc, 0, "forced ingest: %r" % r)
    eq(r.json()["ocr"][0]["pages"], [1, 2], "every page OCRed with ocr = force")
    r = t.cli("ingest", "--path", forced, "--data-dir", t.path("auto"), timeout=300)
    eq(r.rc, 0, "auto ingest: %r" % r)
    check("ocr: mixed.pdf: page 2 (mean confidence " in r.out,
          "auto: only the page without a text layer, in the text report: %r" % r.out)
