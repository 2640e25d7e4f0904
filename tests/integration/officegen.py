# SPDX-License-Identifier: MIT
"""
officegen.py - minimal but real Office Open XML (.docx, .xlsx) and OpenDocument (.odt, .ods)
writers for the tests (Python stdlib zipfile only), with the parts and namespaces the formats
define: [Content_Types].xml, relationships, document properties, styles. Plus hostile files: a
zip bomb, a billion-laughs / XXE part, a truncated archive, an encrypted (OLE) container.
"""
import io
import zipfile
from xml.sax.saxutils import escape

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
S = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PR = "http://schemas.openxmlformats.org/package/2006/relationships"
CT = "http://schemas.openxmlformats.org/package/2006/content-types"
CORE = ("http://schemas.openxmlformats.org/package/2006/metadata/core-properties")
DC = "http://purl.org/dc/elements/1.1/"
ODF_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
ODF_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
ODF_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
ODF_META = "urn:oasis:names:tc:opendocument:xmlns:meta:1.0"


def _zip(parts, first=None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        if first:  # ODF: the mimetype entry first and stored
            z.writestr(zipfile.ZipInfo(first[0]), first[1], compress_type=zipfile.ZIP_STORED)
        for name, data in parts.items():
            z.writestr(name, data)
    return buf.getvalue()


def _core(title):
    t = "<dc:title>%s</dc:title>" % escape(title) if title else ""
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<cp:coreProperties xmlns:cp="%s" xmlns:dc="%s">%s</cp:coreProperties>'
            % (CORE, DC, t))


def docx_bytes(blocks, title=None, localized_headings=False):
    """blocks: list of ("h1".."h6", text) | ("p", text) | ("li", text, level) |
    ("table", [[cell, ...], ...]). localized_headings: heading styles get ids like
    "berschrift1" with the name "heading N" in styles.xml, as a German Word writes them."""
    body = []

    def para(text, style=None, num=None):
        ppr = ""
        if style or num is not None:
            ppr = "<w:pPr>"
            if style:
                ppr += '<w:pStyle w:val="%s"/>' % style
            if num is not None:
                ppr += '<w:numPr><w:ilvl w:val="%d"/><w:numId w:val="1"/></w:numPr>' % num
            ppr += "</w:pPr>"
        # split the text over two runs, as Word does at formatting changes
        half = len(text) // 2
        runs = ('<w:r><w:t xml:space="preserve">%s</w:t></w:r>'
                '<w:r><w:rPr><w:b/></w:rPr><w:t xml:space="preserve">%s</w:t></w:r>'
                % (escape(text[:half]), escape(text[half:])))
        return "<w:p>%s%s</w:p>" % (ppr, runs)

    for b in blocks:
        kind = b[0]
        if kind.startswith("h"):
            level = int(kind[1:])
            sid = ("berschrift%d" if localized_headings else "Heading%d") % level
            body.append(para(b[1], style=sid))
        elif kind == "p":
            body.append(para(b[1]))
        elif kind == "li":
            body.append(para(b[1], style="ListParagraph", num=b[2] if len(b) > 2 else 0))
        elif kind == "table":
            rows = "".join("<w:tr>%s</w:tr>" % "".join(
                "<w:tc><w:tcPr/>%s</w:tc>" % para(c) for c in row) for row in b[1])
            body.append("<w:tbl><w:tblPr/>%s</w:tbl>" % rows)
        elif kind == "deleted":
            body.append('<w:p><w:del w:id="1" w:author="x"><w:r><w:delText>%s</w:delText>'
                        '</w:r></w:del></w:p>' % escape(b[1]))
    doc = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
           '<w:document xmlns:w="%s" xmlns:r="%s"><w:body>%s<w:sectPr/></w:body></w:document>'
           % (W, R, "".join(body)))
    styles = ['<w:style w:type="paragraph" w:styleId="Normal"><w:name w:val="Normal"/></w:style>']
    for n in range(1, 7):
        sid = ("berschrift%d" if localized_headings else "Heading%d") % n
        styles.append('<w:style w:type="paragraph" w:styleId="%s"><w:name w:val="heading %d"/>'
                      '</w:style>' % (sid, n))
    styles_xml = ('<?xml version="1.0" encoding="UTF-8"?><w:styles xmlns:w="%s">%s</w:styles>'
                  % (W, "".join(styles)))
    parts = {
        "[Content_Types].xml":
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="%s">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/word/document.xml" ContentType="application/vnd.'
            'openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>' % CT,
        "_rels/.rels":
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="%s">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/'
            '2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>' % PR,
        "word/document.xml": doc,
        "word/styles.xml": styles_xml,
        "docProps/core.xml": _core(title),
    }
    return _zip(parts)


def odt_bytes(blocks, title=None):
    """blocks as for docx_bytes (h1..h6, p, li, table)."""
    body = []
    items = []

    def flush_list():
        if items:
            body.append("<text:list>%s</text:list>" % "".join(items))
            items.clear()

    for b in blocks:
        kind = b[0]
        if kind == "li":
            items.append("<text:list-item><text:p>%s</text:p></text:list-item>" % escape(b[1]))
            continue
        flush_list()
        if kind.startswith("h"):
            body.append('<text:h text:outline-level="%d">%s</text:h>'
                        % (int(kind[1:]), escape(b[1])))
        elif kind == "p":
            words = b[1].split(" ", 1)
            rest = " " + words[1] if len(words) > 1 else ""
            body.append('<text:p><text:span>%s</text:span>%s</text:p>'
                        % (escape(words[0]), escape(rest)))
        elif kind == "table":
            rows = "".join("<table:table-row>%s</table:table-row>" % "".join(
                "<table:table-cell><text:p>%s</text:p></table:table-cell>" % escape(c)
                for c in row) for row in b[1])
            body.append('<table:table table:name="T">%s</table:table>' % rows)
    flush_list()
    content = ('<?xml version="1.0" encoding="UTF-8"?><office:document-content '
               'xmlns:office="%s" xmlns:text="%s" xmlns:table="%s" office:version="1.3">'
               '<office:body><office:text>%s</office:text></office:body>'
               '</office:document-content>' % (ODF_OFFICE, ODF_TEXT, ODF_TABLE, "".join(body)))
    meta = ('<?xml version="1.0" encoding="UTF-8"?><office:document-meta xmlns:office="%s" '
            'xmlns:dc="%s" xmlns:meta="%s"><office:meta>%s</office:meta></office:document-meta>'
            % (ODF_OFFICE, DC, ODF_META,
               "<dc:title>%s</dc:title>" % escape(title) if title else ""))
    manifest = ('<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest='
                '"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.3">'
                '<manifest:file-entry manifest:full-path="/" manifest:media-type='
                '"application/vnd.oasis.opendocument.text"/></manifest:manifest>')
    return _zip({"content.xml": content, "meta.xml": meta, "META-INF/manifest.xml": manifest},
                first=("mimetype", "application/vnd.oasis.opendocument.text"))


def xlsx_bytes(sheets, title=None):
    """sheets: list of (name, rows), rows a list of lists of str/int/float/None. Strings go to
    the shared-strings table, numbers inline, as Excel writes them."""
    shared = []
    index = {}

    def sidx(s):
        if s not in index:
            index[s] = len(shared)
            shared.append(s)
        return index[s]

    def col(i):
        s = ""
        i += 1
        while i:
            i, r = divmod(i - 1, 26)
            s = chr(65 + r) + s
        return s

    parts = {}
    sheet_entries = []
    rels = []
    for n, (name, rows) in enumerate(sheets, 1):
        xml_rows = []
        for r, row in enumerate(rows, 1):
            cells = []
            for c, v in enumerate(row):
                ref = "%s%d" % (col(c), r)
                if v is None:
                    continue
                if isinstance(v, str):
                    cells.append('<c r="%s" t="s"><v>%d</v></c>' % (ref, sidx(v)))
                else:
                    cells.append('<c r="%s"><v>%s</v></c>' % (ref, v))
            xml_rows.append('<row r="%d">%s</row>' % (r, "".join(cells)))
        parts["xl/worksheets/sheet%d.xml" % n] = (
            '<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="%s"><sheetData>%s'
            '</sheetData></worksheet>' % (S, "".join(xml_rows)))
        sheet_entries.append('<sheet name="%s" sheetId="%d" r:id="rId%d"/>'
                             % (escape(name, {'"': "&quot;"}), n, n))
        rels.append('<Relationship Id="rId%d" Type="http://schemas.openxmlformats.org/'
                    'officeDocument/2006/relationships/worksheet" Target="worksheets/'
                    'sheet%d.xml"/>' % (n, n))
    parts["xl/workbook.xml"] = ('<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="%s" '
                                'xmlns:r="%s"><sheets>%s</sheets></workbook>'
                                % (S, R, "".join(sheet_entries)))
    parts["xl/_rels/workbook.xml.rels"] = ('<?xml version="1.0" encoding="UTF-8"?>'
                                           '<Relationships xmlns="%s">%s</Relationships>'
                                           % (PR, "".join(rels)))
    parts["xl/sharedStrings.xml"] = (
        '<?xml version="1.0" encoding="UTF-8"?><sst xmlns="%s" count="%d" uniqueCount="%d">%s'
        '</sst>' % (S, len(shared), len(shared),
                    "".join("<si><t>%s</t></si>" % escape(s) for s in shared)))
    parts["[Content_Types].xml"] = ('<?xml version="1.0" encoding="UTF-8"?><Types xmlns="%s">'
                                    '<Default Extension="xml" ContentType="application/xml"/>'
                                    '</Types>' % CT)
    parts["docProps/core.xml"] = _core(title)
    return _zip(parts)


def ods_bytes(sheets, title=None):
    """sheets: list of (name, rows). Empty cells and the trailing padding are written with
    number-columns-repeated / number-rows-repeated, as LibreOffice does."""
    tables = []
    for name, rows in sheets:
        xml_rows = []
        for row in rows:
            cells = []
            for v in row:
                if v is None:
                    cells.append("<table:table-cell/>")
                elif isinstance(v, str):
                    cells.append('<table:table-cell office:value-type="string"><text:p>%s'
                                 '</text:p></table:table-cell>' % escape(v))
                else:
                    cells.append('<table:table-cell office:value-type="float" office:value="%s">'
                                 '<text:p>%s</text:p></table:table-cell>' % (v, v))
            cells.append('<table:table-cell table:number-columns-repeated="16378"/>')
            xml_rows.append("<table:table-row>%s</table:table-row>" % "".join(cells))
        xml_rows.append('<table:table-row table:number-rows-repeated="1048000">'
                        '<table:table-cell table:number-columns-repeated="16384"/>'
                        '</table:table-row>')
        tables.append('<table:table table:name="%s">%s</table:table>'
                      % (escape(name, {'"': "&quot;"}), "".join(xml_rows)))
    content = ('<?xml version="1.0" encoding="UTF-8"?><office:document-content '
               'xmlns:office="%s" xmlns:text="%s" xmlns:table="%s" office:version="1.3">'
               '<office:body><office:spreadsheet>%s</office:spreadsheet></office:body>'
               '</office:document-content>' % (ODF_OFFICE, ODF_TEXT, ODF_TABLE, "".join(tables)))
    meta = ('<?xml version="1.0" encoding="UTF-8"?><office:document-meta xmlns:office="%s" '
            'xmlns:dc="%s"><office:meta>%s</office:meta></office:document-meta>'
            % (ODF_OFFICE, DC, "<dc:title>%s</dc:title>" % escape(title) if title else ""))
    return _zip({"content.xml": content, "meta.xml": meta},
                first=("mimetype", "application/vnd.oasis.opendocument.spreadsheet"))


# ---- hostile files ------------------------------------------------------------------------------

def zip_bomb_docx():
    """A .docx whose document.xml inflates to 200 MiB of spaces (compressed about 200 KiB)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open("word/document.xml", "w", force_zip64=True) as f:
            f.write(('<?xml version="1.0"?><w:document xmlns:w="%s"><w:body><w:p><w:r><w:t>'
                     % W).encode())
            block = b" " * (1 << 20)
            for _ in range(200):
                f.write(block)
            f.write(b"</w:t></w:r></w:p></w:body></w:document>")
    return buf.getvalue()


def billion_laughs_docx():
    """A .docx whose document.xml defines nested entities (billion laughs) and an external
    entity reading /etc/passwd (XXE)."""
    ents = ['<!ENTITY lol0 "lol">'] + ['<!ENTITY lol%d "%s">' % (i, ("&lol%d;" % (i - 1)) * 10)
                                       for i in range(1, 10)]
    doc = ('<?xml version="1.0"?><!DOCTYPE w:document [%s<!ENTITY xxe SYSTEM '
           '"file:///etc/passwd">]><w:document xmlns:w="%s"><w:body><w:p><w:r><w:t>&lol9;&xxe;'
           '</w:t></w:r></w:p></w:body></w:document>' % ("".join(ents), W))
    return _zip({"word/document.xml": doc})


def hidden_doctype_docx():
    """A .docx whose DOCTYPE (an external entity reading /etc/passwd) follows a comment holding
    "<a", which would end a scanner that only looks at the prolog."""
    doc = ('<?xml version="1.0"?><!-- <a --><!DOCTYPE w:document [<!ENTITY x SYSTEM '
           '"file:///etc/passwd">]><w:document xmlns:w="%s"><w:body><w:p><w:r><w:t>&x;</w:t>'
           '</w:r></w:p></w:body></w:document>' % W)
    return _zip({"word/document.xml": doc})


def zipcrypto_flagged(data):
    """data with every entry marked encrypted (general purpose flag bit 0, local and central
    headers), as a zip made with a password looks to a reader."""
    import struct
    b = bytearray(data)
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = b.find(sig)
        while i >= 0:
            flags = struct.unpack_from("<H", b, i + off)[0]
            struct.pack_into("<H", b, i + off, flags | 1)
            i = b.find(sig, i + 4)
    return bytes(b)


def ole_encrypted():
    """The first bytes of an OLE compound file, which is what a password-protected .docx/.xlsx
    is (an EncryptedPackage inside a CFB container), padded to a plausible size."""
    return bytes([0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) + b"\0" * 4088
