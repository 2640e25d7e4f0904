# SPDX-License-Identifier: MIT
"""
test_optlib.py - the PDF and OCR libraries are loaded on first use (src/optlib.c), not linked:
a daemon that has read no PDF has neither poppler nor Tesseract mapped (/proc/PID/maps), a text
PDF maps poppler only, a scanned one Tesseract too; and on a host where the libraries cannot be
loaded (here: a broken file of the same soname first on LD_LIBRARY_PATH) a PDF is a per-file
error in the ingest report while the other files are ingested, never a crash.
"""
import os
import re

import harness
from harness import check, eq, short, test, write
from pdfgen import write_pdf
from scangen import scanned_pdf_bytes

POPPLER = "libpoppler-glib.so"
TESSERACT = "libtesseract.so"


def mapped(pid):
    """The file names mapped into process pid."""
    with open("/proc/%d/maps" % pid) as f:
        return {os.path.basename(line.split()[-1]) for line in f if "/" in line}


def has(names, prefix):
    return any(n.startswith(prefix) for n in names)


def soname_in_binary(stem):
    """The soname (e.g. libpoppler-glib.so.8) the binary dlopens, as the build wrote it in."""
    with open(harness.BIN, "rb") as f:
        m = re.search(re.escape(stem.encode()) + rb"\.so\.[0-9.]+(?=\0)", f.read())
    check(m is not None, "%s: no %s.so.N string (soname) in the binary" % (harness.BIN, stem))
    return m.group(0).decode()


def ingest_cli(t, docs, data, env):
    """`ragd ingest --json` of docs. Returns: documents added, {source: message} of the errors."""
    r = t.cli("ingest", "--path", docs, "--data-dir", data, "--json", env=env)
    check(r.out.strip(), "no report: %r" % r)
    rep = r.json()
    return rep["documents"]["added"], {e["source"]: e["message"] for e in rep["errors"]}


@test
def optlib_daemon_maps_pdf_libraries_on_first_use(t):
    d = t.serve()
    names = mapped(d.proc.pid)
    check(not has(names, POPPLER) and not has(names, TESSERACT),
          "poppler/Tesseract mapped before any PDF: %s"
          % sorted(n for n in names if n.startswith((POPPLER, TESSERACT))))
    docs = t.path("docs")
    write(os.path.join(docs, "notes.md"), "# Notes\n\nThe heron feeder is refilled on Fridays.\n")
    write_pdf(os.path.join(docs, "manual.pdf"), [["The kettle descaler goes in the blue tin."]])
    rep = d.ingest(docs)
    eq(rep["documents"]["added"], 2, "documents added (md, text PDF): %s" % short(rep))
    names = mapped(d.proc.pid)
    check(has(names, POPPLER), "poppler not mapped after a PDF was ingested")
    check(not has(names, TESSERACT), "Tesseract mapped although no page needed OCR")
    scans = t.path("scans")
    write(os.path.join(scans, "scan.pdf"),
          scanned_pdf_bytes([("scan", ["Visitors sign the orange ledger at the gate."])]))
    rep = d.ingest(scans)
    eq(rep["documents"]["added"], 1, "scanned PDF added: %s" % short(rep))
    check(has(mapped(d.proc.pid), TESSERACT), "Tesseract not mapped after an OCRed page")
    ans = d.retrieve({"query": "who signs the orange ledger", "k": 1})
    check(ans["results"] and ans["results"][0]["source"] == "scan.pdf",
          "the OCRed text is not retrieved: %s" % short(ans["results"]))


@test
def optlib_unloadable_libraries_are_per_file_errors(t):
    broken = t.path("broken-libs")
    for stem in ("libpoppler-glib", "libtesseract"):
        write(os.path.join(broken, soname_in_binary(stem)), "not a shared object\n")
    docs, data = t.path("docs"), t.path("data")
    write(os.path.join(docs, "notes.md"), "# Notes\n\nThe heron feeder is refilled on Fridays.\n")
    write_pdf(os.path.join(docs, "manual.pdf"), [["The kettle descaler goes in the blue tin."]])
    env = {"LD_LIBRARY_PATH": broken}
    r = t.cli("--version", env=env)
    eq(r.rc, 0, "ragd --version with the PDF libraries broken: %r" % r)
    added, errors = ingest_cli(t, docs, data, env)
    eq(added, 1, "documents added (the markdown file)")
    eq(sorted(errors), ["manual.pdf"], "failed files")
    check("PDF support unavailable" in errors["manual.pdf"] and POPPLER in errors["manual.pdf"],
          "manual.pdf reason: %s" % errors["manual.pdf"])
    # poppler loads but Tesseract does not: text pages are read, a scanned page says why not
    os.remove(os.path.join(broken, soname_in_binary("libpoppler-glib")))
    scans = t.path("scans")
    write(os.path.join(scans, "scan.pdf"),
          scanned_pdf_bytes([("scan", ["Visitors sign the orange ledger at the gate."])]))
    write_pdf(os.path.join(scans, "text.pdf"), [["The kettle descaler goes in the blue tin."]])
    added, errors = ingest_cli(t, scans, t.path("data2"), env)
    eq(added, 1, "documents added (the text PDF)")
    eq(sorted(errors), ["scan.pdf"], "failed files")
    check("OCR unavailable" in errors["scan.pdf"] and TESSERACT in errors["scan.pdf"],
          "scan.pdf reason: %s" % errors["scan.pdf"])
