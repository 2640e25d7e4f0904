# SPDX-License-Identifier: MIT
"""
test_formats.py - a folder mixing markdown, PDF (generated here with known text on known pages,
plus an encrypted one made with qpdf, a truncated one and one without a text layer), HTML, rst, an
invalid-UTF-8 text file and a symlink leaving the folder, together with pushed documents, ingested
in one background job (POST /ingest "wait": false, followed through GET /jobs/{id}); then the
page-3 question, the HTML/rst structure, and a second ingest refused while one runs.
"""
import os
import subprocess

from harness import check, eq, expect_error, fixture, shared, short, test, wait_until, write
from pdfgen import pdf_bytes, write_pdf

REFUND_PAGES = [
    ["Returns handbook", "This handbook explains how merchandise returns work at the shop."],
    ["Shipping overview", "Parcels leave the warehouse within two business days by courier."],
    ["Late refunds", "A refund requested after ninety days is paid as zircon store credit,",
     "never in cash. Ask the cashier for the zircon voucher form."],
    ["Contact", "Write to the helpdesk with your order number for anything else."],
]

HTML = """<!DOCTYPE html>
<html><head><title>Opening  hours</title>
<style>body { color: red } .quokka { display: none }</style>
<script>var secretTracker = "quokka-analytics";</script></head>
<body><h1>Shop hours</h1>
<p>We open at 9&nbsp;am &amp; close at 6&nbsp;pm on weekdays.</p>
<h2>Public holidays</h2>
<p>On public holidays the shop is closed; the marmalade counter stays open &#8212; always.</p>
<!-- a comment about quokka that must vanish -->
</body></html>
"""

RST = """Warehouse guide
===============

The warehouse stores pallets of inventory.

Forklift rules
--------------

Only certified drivers operate the forklift; wear the tangerine vest in aisle nine.
"""


@fixture("formats")
def formats_fixture(ctx):
    docs = ctx.path("docs")
    write(os.path.join(docs, "handbook.md"),
          "# Staff handbook\n\n## Breaks\n\nStaff take a fifteen minute break every four hours.\n")
    write_pdf(os.path.join(docs, "refunds.pdf"), REFUND_PAGES, title="Refund handbook")
    write_pdf(os.path.join(docs, "scanned.pdf"), [[], []])
    whole = pdf_bytes(REFUND_PAGES)
    write(os.path.join(docs, "truncated.pdf"), whole[: len(whole) // 2])
    subprocess.run(["qpdf", "--encrypt", "userpw", "ownerpw", "256", "--",
                    os.path.join(docs, "refunds.pdf"), os.path.join(docs, "locked.pdf")],
                   check=True)
    write(os.path.join(docs, "hours.html"), HTML)
    write(os.path.join(docs, "guide.rst"), RST)
    write(os.path.join(docs, "latin1.txt"), b"caf\xe9 au lait\n")
    write(ctx.path("outside", "secret.md"), "# Secret\n\nThe vault code is periwinkle.\n")
    os.symlink(ctx.path("outside", "secret.md"), os.path.join(docs, "escape.md"))
    d = ctx.serve(env={"RAGD_INGEST_ALLOWED_ROOTS": docs})
    return {"d": d, "docs": docs, "state": {}}


PUSHED = [
    {"id": "faq-1", "title": "Gift wrapping", "markdown": "# Gift wrapping\n\nWe wrap presents "
     "in recycled lilac paper for free.", "source": "https://shop.example/faq/1",
     "tags": ["faq"], "metadata": {"lang": "en"}},
    {"id": "faq-2", "text": "Loyalty points expire after eighteen months of inactivity.",
     "tags": ["faq", "loyalty"], "metadata": {"lang": "en", "year": 2024}},
]


@shared("formats")
def formats_mixed_folder_one_job(t, fx):
    d = fx["d"]
    r = d.call("POST", "/documents", {"documents": PUSHED})
    eq(r.status, 200, "POST /documents: %r" % r)
    eq(r.json["counts"], {"added": 2, "updated": 0, "unchanged": 0}, "pushed counts")
    r = d.call("POST", "/ingest", {"path": fx["docs"], "wait": False})
    eq(r.status, 202, "POST /ingest wait=false: %r" % r)
    job = r.json["job_id"]
    eq(r.json["status_url"], "/jobs/" + job, "status_url")
    seen = []

    def finished():
        j = d.call("GET", "/jobs/" + job)
        eq(j.status, 200, "GET /jobs/%s" % job)
        seen.append(j.json)
        return j.json if j.json["state"] != "running" else None

    final = wait_until(finished, 120, "job %s to finish" % job)
    for a, b in zip(seen, seen[1:]):  # progress only moves forward
        check(b["progress"]["files_done"] >= a["progress"]["files_done"], "progress went back")
    eq(final["state"], "done", "final state (%s)" % short(final))
    rep = final["report"]
    files = 8  # handbook.md, 4 PDFs, html, rst, latin1.txt; escape.md is skipped
    eq(final["progress"]["files_total"], files, "files_total")
    eq(final["progress"]["files_done"], files, "files_done")
    eq(rep["documents"]["seen"], files, "documents seen")
    eq(rep["documents"]["added"], 4, "documents added (md, pdf, html, rst)")
    eq(final["progress"]["errors"], 4, "progress.errors")
    errors = {e["source"]: e["message"] for e in rep["errors"]}
    eq(sorted(errors), ["latin1.txt", "locked.pdf", "scanned.pdf", "truncated.pdf"], "failed files")
    check("encrypted" in errors["locked.pdf"], "locked.pdf reason: %s" % errors["locked.pdf"])
    check("corrupt" in errors["truncated.pdf"] or "damaged" in errors["truncated.pdf"],
          "truncated.pdf reason: %s" % errors["truncated.pdf"])
    check("no text layer" in errors["scanned.pdf"], "scanned.pdf reason: %s" % errors["scanned.pdf"])
    check("invalid UTF-8" in errors["latin1.txt"], "latin1.txt reason: %s" % errors["latin1.txt"])
    warnings = {w["source"]: w["message"] for w in rep["warnings"]}
    check("escape.md" in warnings and "outside" in warnings["escape.md"],
          "escape.md reported as skipped: %s" % short(rep["warnings"]))
    check(final["progress"]["chunks_embedded"] >= 4, "chunks_embedded %s" % final["progress"])
    # the pushed documents are not touched by the directory ingest
    lst = d.call("GET", "/documents").json
    eq(lst["total"], 2, "pushed documents after the ingest")
    eq(lst["counts"]["files"], 4, "file documents")
    fx["state"]["job"] = job


@shared("formats")
def formats_pdf_page_three(t, fx):
    ans = fx["d"].retrieve({"query": "refund after ninety days zircon store credit", "k": 3})
    top = ans["results"][0]
    eq(top["source"], "refunds.pdf", "top source (%s)" % short(ans["results"]))
    eq(top["page"], 3, "top result page")
    eq(top["title"], "Refund handbook", "PDF title from its metadata")
    check("zircon" in top["text"], "page 3 text: %r" % top["text"])
    eq(ans["sources"][0]["page"], 3, "sources[0].page")
    check(ans["context"].startswith("[1] refunds.pdf p.3\n"), "context tag: %r" % ans["context"][:80])
    eq(top["metadata"].get("pages"), 4, "metadata.pages")
    # a page filter narrows to the page
    ans = fx["d"].retrieve({"query": "refund handbook shop", "k": 5,
                            "filters": {"type": "eq", "key": "page", "value": 2}})
    check(ans["results"] and all(r["page"] == 2 for r in ans["results"]),
          "page filter: %s" % short(ans["results"]))


@shared("formats")
def formats_html_and_rst(t, fx):
    d = fx["d"]
    ans = d.retrieve({"query": "public holidays marmalade counter", "k": 1})
    top = ans["results"][0]
    eq(top["source"], "hours.html", "html source")
    eq(top["title"], "Opening hours", "title from <title>")
    eq(top["heading"], "Shop hours > Public holidays", "heading path from h1/h2")
    check("\u2014" in top["text"] and "<" not in top["text"] and "&" not in top["text"],
          "decoded, tag-free text: %r" % top["text"])
    ans = d.retrieve({"query": "open 9 am close 6 pm weekdays", "k": 1})
    check("9 am & close" in ans["results"][0]["text"].replace("\u00a0", " "),
          "entities decoded: %r" % ans["results"][0]["text"])
    for word in ("quokka", "secretTracker", "periwinkle"):  # script, style, comment, escape.md
        ans = d.retrieve({"query": word, "k": 5})
        for r in ans["results"]:
            check(word not in r["text"], "%s leaked into %s: %r" % (word, r["source"], r["text"]))
    ans = d.retrieve({"query": "forklift tangerine vest aisle nine", "k": 1})
    top = ans["results"][0]
    eq(top["source"], "guide.rst", "rst source")
    eq(top["title"], "Warehouse guide", "rst title")
    eq(top["heading"], "Warehouse guide > Forklift rules", "rst heading path")


@shared("formats")
def formats_reingest_keeps_pushed_and_embeds_nothing(t, fx):
    d = fx["d"]
    before = d.health()["store"]
    rep = d.ingest(fx["docs"])
    eq(rep["documents"]["unchanged"], 4, "unchanged on re-ingest")
    eq(rep["chunks"]["embedded"], 0, "nothing embedded on re-ingest")
    r = d.call("POST", "/documents", {"documents": PUSHED})
    eq(r.json["counts"], {"added": 0, "updated": 0, "unchanged": 2}, "re-pushed counts")
    eq(d.health()["store"], before, "store after re-ingest and re-push")
    ans = d.retrieve({"query": "loyalty points expire inactivity", "k": 1})
    eq(ans["results"][0]["source"], "push:faq-2", "pushed document without source")
    r = d.call("GET", "/jobs/" + fx["state"]["job"])
    eq(r.json["state"], "done", "the earlier job is still listed")
    expect_error(d.call("GET", "/jobs/nope"), 404, "not_found", what="unknown job")


@fixture("busy")
def busy_fixture(ctx):
    for i in range(400):
        write(ctx.path("many", "f%03d.md" % i),
              "# File %d\n\n%s\n" % (i, " ".join("word%d_%d" % (i, k) for k in range(60))))
    return {"d": ctx.serve(), "many": ctx.path("many")}


@shared("busy")
def jobs_one_ingest_at_a_time(t, fx):
    d = fx["d"]
    r = d.call("POST", "/ingest", {"path": fx["many"], "wait": False})
    eq(r.status, 202, "first ingest")
    job = r.json["job_id"]
    second = d.call("POST", "/ingest", {"path": fx["many"]})
    e = expect_error(second, 409, "busy", what="second ingest while one runs")
    eq(e.get("job_id"), job, "409 names the running job")
    third = d.call("POST", "/ingest", {"path": fx["many"], "wait": False})
    eq(third.status, 409, "a background ingest is refused too")
    states = []

    def done():
        j = d.call("GET", "/jobs/" + job).json
        states.append(j["state"])
        return j if j["state"] != "running" else None

    final = wait_until(done, 300, "the job to finish")
    eq(final["state"], "done", "final state")
    eq(final["report"]["documents"]["added"], 400, "documents added")
    eq(final["progress"]["files_done"], 400, "files done")
    check(all(s == "running" for s in states[:-1]), "states: %s" % states)
    eq(d.call("POST", "/ingest", {"path": fx["many"]}).status, 200, "an ingest after the job")


@test
def globs_config_and_request(t):
    docs = t.path("docs")
    for rel in ("a.md", "b.md", "drafts/c.md", "guide/x.pdf", "notes.txt", "keep/d.md"):
        if rel.endswith(".pdf"):
            os.makedirs(os.path.dirname(os.path.join(docs, rel)), exist_ok=True)
            write_pdf(os.path.join(docs, rel), [["Pallet jack manual page one."]])
        else:
            write(os.path.join(docs, rel), "# %s\n\nText of %s.\n" % (rel, rel))
    cfg = t.path("ragd.ini")
    write(cfg, "[ingest]\nexclude = drafts:*.txt\n")
    d = t.serve(config=cfg)
    rep = d.ingest(docs)
    eq(rep["documents"]["added"], 4, "config exclude drops drafts/ and *.txt (%s)" % short(rep))
    # a request's include replaces the config's globs: only PDFs are read, others kept
    r = d.call("POST", "/ingest", {"path": docs, "include": ["*.pdf"], "exclude": []})
    eq(r.status, 200, "ingest with include: %r" % r)
    eq(r.json["documents"]["seen"], 1, "only the PDF is selected")
    eq(r.json["documents"]["removed"], 0, "unselected documents are not removed")
    os.remove(os.path.join(docs, "a.md"))
    r = d.call("POST", "/ingest", {"path": docs, "include": ["keep/*"]})
    eq(r.json["documents"]["removed"], 0, "a.md is outside the include: kept")
    rep = d.ingest(docs)
    eq(rep["documents"]["removed"], 1, "a.md removed by an ingest that selects it")
    for bad in ({"path": docs, "include": "*.md"}, {"path": docs, "exclude": [""]},
                {"path": docs, "include": [3]}):
        expect_error(d.call("POST", "/ingest", bad), 400, "invalid_request", None, short(bad))


@test
def unknown_extensions_and_utf8_repair(t):
    docs = t.path("docs")
    write(os.path.join(docs, "notes.org"), "* Shelving\n\nHeavy boxes go on the bottom shelf.\n")
    write(os.path.join(docs, "photo.png"), b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    write(os.path.join(docs, "menu.txt"), b"Cr\xe8me br\xfbl\xe9e on Fridays.\n")
    d = t.serve(env={"RAGD_INGEST_UNKNOWN_AS_TEXT": "true", "RAGD_INGEST_INVALID_UTF8": "repair"})
    rep = d.ingest(docs)
    eq(rep["documents"]["added"], 2, "notes.org and menu.txt (%s)" % short(rep))
    eq([e["source"] for e in rep["errors"]], ["photo.png"], "binary file reported")
    check("binary" in rep["errors"][0]["message"], rep["errors"][0]["message"])
    eq([w["source"] for w in rep["warnings"]], ["menu.txt"], "repaired file warned")
    check("repaired" in rep["warnings"][0]["message"], rep["warnings"][0]["message"])
    ans = d.retrieve({"query": "heavy boxes bottom shelf", "k": 1})
    eq(ans["results"][0]["source"], "notes.org", "unknown extension read as text")
    ans = d.retrieve({"query": "Fridays", "k": 1})
    check("\ufffd" in ans["results"][0]["text"], "U+FFFD in %r" % ans["results"][0]["text"])
    # by default neither: the unknown file is not listed, the invalid one is an error
    d.stop()
    d = t.serve(data_dir=t.path("data2"))
    rep = d.ingest(docs)
    eq(rep["documents"]["seen"], 1, "only menu.txt is a supported file")
    eq(rep["documents"]["failed"], 1, "invalid UTF-8 skipped by default")
