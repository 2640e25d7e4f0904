# SPDX-License-Identifier: MIT
"""
scangen.py - scanned PDFs for the OCR tests: each "scanned" page is a greyscale picture of known
text (drawn with cairo through ctypes, font DejaVu Sans from Debian's fonts-dejavu-core) placed
as an image XObject filling the page, with no text layer at all, the way a scanner's PDF is
built. Pages may also be ordinary text pages (Helvetica), to make mixed documents.
"""
import ctypes
import ctypes.util
import zlib

from pdfgen import escape, pdf_finish

DPI = 150
PAGE_W_PT, PAGE_H_PT = 612, 792

_cairo = None


def _lib():
    global _cairo
    if _cairo is None:
        name = ctypes.util.find_library("cairo") or "libcairo.so.2"
        lib = ctypes.CDLL(name)
        lib.cairo_image_surface_create.restype = ctypes.c_void_p
        lib.cairo_image_surface_create.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.cairo_create.restype = ctypes.c_void_p
        lib.cairo_create.argtypes = [ctypes.c_void_p]
        for fn in ("cairo_paint", "cairo_destroy", "cairo_surface_flush",
                   "cairo_surface_destroy"):
            getattr(lib, fn).argtypes = [ctypes.c_void_p]
        lib.cairo_set_source_rgb.argtypes = [ctypes.c_void_p] + [ctypes.c_double] * 3
        lib.cairo_select_font_face.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                               ctypes.c_int]
        lib.cairo_set_font_size.argtypes = [ctypes.c_void_p, ctypes.c_double]
        lib.cairo_move_to.argtypes = [ctypes.c_void_p, ctypes.c_double, ctypes.c_double]
        lib.cairo_show_text.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.cairo_image_surface_get_data.restype = ctypes.POINTER(ctypes.c_ubyte)
        lib.cairo_image_surface_get_data.argtypes = [ctypes.c_void_p]
        lib.cairo_image_surface_get_stride.restype = ctypes.c_int
        lib.cairo_image_surface_get_stride.argtypes = [ctypes.c_void_p]
        _cairo = lib
    return _cairo


def render_lines(lines, dpi=DPI, font_px=30):
    """Returns (width, height, grey bytes) of a page picture with lines of black text on white."""
    c = _lib()
    w, h = PAGE_W_PT * dpi // 72, PAGE_H_PT * dpi // 72
    surface = c.cairo_image_surface_create(1, w, h)  # CAIRO_FORMAT_RGB24
    cr = c.cairo_create(surface)
    c.cairo_set_source_rgb(cr, 1.0, 1.0, 1.0)
    c.cairo_paint(cr)
    c.cairo_set_source_rgb(cr, 0.0, 0.0, 0.0)
    c.cairo_select_font_face(cr, b"DejaVu Sans", 0, 0)
    c.cairo_set_font_size(cr, float(font_px))
    y = dpi  # one inch margin
    for line in lines:
        c.cairo_move_to(cr, float(dpi), float(y))
        c.cairo_show_text(cr, line.encode("utf-8"))
        y += int(font_px * 1.6)
    c.cairo_surface_flush(surface)
    stride = c.cairo_image_surface_get_stride(surface)
    raw = ctypes.string_at(c.cairo_image_surface_get_data(surface), stride * h)
    c.cairo_destroy(cr)
    c.cairo_surface_destroy(surface)
    grey = bytearray()
    for row in range(h):
        grey += raw[row * stride: row * stride + 4 * w: 4]  # the blue byte of each xRGB pixel
    return w, h, bytes(grey)


def scanned_pdf_bytes(pages, title=None):
    """pages: list of ("scan", [lines]) for a picture-only page, ("text", [lines]) for a page
    with a text layer, or ("blank",) for a white picture."""
    objs = []

    def add(body):
        objs.append(body)
        return len(objs)

    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
               b"/Encoding /WinAnsiEncoding >>")
    kid_bodies = []
    for page in pages:
        kind = page[0]
        if kind == "text":
            ops = ["BT", "/F1 11 Tf", "14 TL", "72 720 Td"]
            for line in page[1]:
                ops.append("(%s) Tj T*" % escape(line))
            ops.append("ET")
            stream = "\n".join(ops).encode("latin-1")
            content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
            kid_bodies.append(b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R"
                              % (font, content))
        else:
            w, h, grey = render_lines(page[1] if kind == "scan" else [])
            data = zlib.compress(grey, 6)
            img = add(b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace "
                      b"/DeviceGray /BitsPerComponent 8 /Filter /FlateDecode /Length %d >>\n"
                      b"stream\n" % (w, h, len(data)) + data + b"\nendstream")
            stream = b"q %d 0 0 %d 0 0 cm /Im1 Do Q" % (PAGE_W_PT, PAGE_H_PT)
            content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
            kid_bodies.append(b"/Resources << /XObject << /Im1 %d 0 R >> >> /Contents %d 0 R"
                              % (img, content))
    pages_id = len(objs) + len(kid_bodies) + 1
    kids = [add(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] %s >>"
                % (pages_id, PAGE_W_PT, PAGE_H_PT, body)) for body in kid_bodies]
    return pdf_finish(objs, kids, pages_id, title)
