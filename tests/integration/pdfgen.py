# SPDX-License-Identifier: MIT
"""
pdfgen.py - a minimal PDF writer (Python stdlib only) for the tests: one page per entry, each
page a list of text lines in Helvetica (the standard font, not embedded), with a correct xref
table and an /Info title. Enough for poppler to extract known text from known pages.
"""


def escape(s):
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_finish(objs, kids, pages_id, title, producer=None):
    """Appends the page tree (it must get number pages_id), the catalog and an /Info title to
    objs (object bodies numbered from 1; kids: the page objects' numbers) and serialises the
    file with its xref table. Returns the PDF bytes."""
    def add(body):
        objs.append(body)
        return len(objs)

    got = add(b"<< /Type /Pages /Kids [%s] /Count %d >>"
              % (b" ".join(b"%d 0 R" % k for k in kids), len(kids)))
    assert got == pages_id
    catalog = add(b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id)
    info = None
    if title:
        extra = b" /Producer (%s)" % producer if producer else b""
        info = add(b"<< /Title (%s)%s >>" % (escape(title).encode("latin-1"), extra))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    trailer = b"<< /Size %d /Root %d 0 R" % (len(objs) + 1, catalog)
    if info:
        trailer += b" /Info %d 0 R" % info
    out += b"trailer\n" + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def pdf_bytes(pages, title=None):
    """pages: list of pages, each a list of lines (str, latin-1 only). Returns the PDF bytes."""
    objs = []  # object bodies, numbered from 1

    def add(body):
        objs.append(body)
        return len(objs)

    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
               b"/Encoding /WinAnsiEncoding >>")
    pages_id = len(objs) + 1 + 2 * len(pages)  # reserved below, after the page objects
    kids = []
    for lines in pages:
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 760 Td"]
        for line in lines:
            ops.append("(%s) Tj T*" % escape(line))
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        kids.append(add(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] "
                        b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>"
                        % (pages_id, font, content)))
    return pdf_finish(objs, kids, pages_id, title, producer=b"ragd tests")


def write_pdf(path, pages, title=None):
    with open(path, "wb") as f:
        f.write(pdf_bytes(pages, title))
