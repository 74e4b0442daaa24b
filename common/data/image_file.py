"""Image files as bytes that MindSpore's C++ ``Decode`` can take, checked without decoding.

The training pipeline decodes in C++ workers (``vision.Decode`` / ``RandomCropDecodeResize``);
this module runs in the Python source that only reads the files. Why check at all: in MindSpore
2.10 a JPEG whose Huffman or scan header is damaged crashes the whole process inside ``Decode``
(SIGSEGV / SIGFPE / SIGABRT, seen with a few flipped bytes; PIL's header parse accepts those
files), and a truncated or empty file stops the pipeline. So the cheap structural checks below
run on every file; what they cannot vouch for (non-baseline JPEG, CMYK, no end marker, formats
other than baseline JPEG and PNG) is decoded here with PIL and handed on as BMP, the rare case.
"""
import errno
import functools
import io
import os
import stat
import struct
import zlib

import numpy as np
from PIL import Image

from common.errors import DatasetError

JPEG_SOI, JPEG_EOI = b"\xff\xd8", b"\xff\xd9"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_BASELINE_SOF = (0xC0, 0xC1)  # sequential Huffman; everything else goes the PIL way


class _Unsure(Exception):
    """The file may be fine, but not in a shape C++ Decode is known to take safely."""


def max_pixels():
    """PIL's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``), which a user may change."""
    return Image.MAX_IMAGE_PIXELS or float("inf")


def _check_size(width, height):
    if width <= 0 or height <= 0:
        raise ValueError(f"image size {width}x{height}")
    if width * height > max_pixels():
        raise ValueError(f"decompression bomb: {width}x{height} pixels is over the limit of {max_pixels()} "
                         f"(PIL.Image.MAX_IMAGE_PIXELS)")


def _huffman_table_ok(counts, symbols, table_class):
    """libjpeg's own test (jpeg_make_d_derived_tbl): codes fit in their lengths with no all-ones
    code; DC symbols <= 15."""
    code = 0
    for length, count in enumerate(counts, 1):
        code += count
        if code >= (1 << length):
            return False
        code <<= 1
    return table_class == 1 or all(s <= 15 for s in symbols)


def check_jpeg(data):
    """Walk the markers up to the first scan; ValueError if damaged, _Unsure if not baseline."""
    pos, frame, tables, quant = 2, None, set(), set()
    while True:
        if pos + 4 > len(data) or data[pos] != 0xFF:
            raise ValueError("damaged JPEG header")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = struct.unpack_from(">H", data, pos + 2)[0]
        segment = data[pos + 4:pos + 2 + length]
        if length < 2 or len(segment) != length - 2:
            raise ValueError("damaged JPEG header")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if marker not in _BASELINE_SOF:
                raise _Unsure()
            frame = _jpeg_frame(segment)
        elif marker == 0xC4:
            tables |= _jpeg_huffman_tables(bytes(segment))
        elif marker == 0xDB:
            quant |= _jpeg_quant_tables(bytes(segment))
        elif marker == 0xDA:
            if frame is None or not set(frame.values()) <= quant:
                raise ValueError("JPEG scan before its frame header or quantisation tables")
            _jpeg_scan(segment, frame, tables)
            break
        elif marker in (0xD8, 0xD9) or 0xD0 <= marker <= 0xD7:
            raise ValueError("damaged JPEG header")
        pos += 2 + length
    if not data.rstrip(b"\x00").endswith(JPEG_EOI):
        raise _Unsure()  # truncated, or trailing bytes: PIL decides


def _jpeg_frame(segment):
    if len(segment) < 6:
        raise ValueError("damaged JPEG frame header")
    precision, height, width, ncomp = struct.unpack_from(">BHHB", segment)
    _check_size(width, height)
    if precision != 8 or ncomp not in (1, 3) or len(segment) != 6 + 3 * ncomp:
        raise _Unsure()  # 12-bit, CMYK / YCCK, odd layouts
    comps = {}
    for i in range(ncomp):
        cid, sampling, qtable = segment[6 + 3 * i:9 + 3 * i]
        if not (1 <= sampling >> 4 <= 4 and 1 <= sampling & 15 <= 4) or qtable > 3 or cid in comps:
            raise ValueError("damaged JPEG frame header")
        comps[cid] = qtable
    return comps  # component id -> its quantisation table


@functools.lru_cache(maxsize=256)
def _jpeg_quant_tables(segment):
    defined, pos = set(), 0
    while pos < len(segment):
        precision, table_id = segment[pos] >> 4, segment[pos] & 15
        if precision > 1 or table_id > 3 or pos + 1 + 64 * (precision + 1) > len(segment):
            raise ValueError("damaged JPEG quantisation table")
        defined.add(table_id)
        pos += 1 + 64 * (precision + 1)
    return frozenset(defined)


@functools.lru_cache(maxsize=256)  # most files share their encoder's tables
def _jpeg_huffman_tables(segment):
    defined, pos = set(), 0
    while pos < len(segment):
        if pos + 17 > len(segment):
            raise ValueError("damaged JPEG Huffman table")
        table_class, table_id = segment[pos] >> 4, segment[pos] & 15
        counts = segment[pos + 1:pos + 17]
        total = sum(counts)
        symbols = segment[pos + 17:pos + 17 + total]
        if table_class > 1 or table_id > 3 or total > 256 or len(symbols) != total \
                or not _huffman_table_ok(counts, symbols, table_class):
            raise ValueError("damaged JPEG Huffman table")
        defined.add((table_class, table_id))
        pos += 17 + total
    return frozenset(defined)


def _jpeg_scan(segment, frame, tables):
    if not segment:
        raise ValueError("damaged JPEG scan header")
    ncomp = segment[0]
    if not 1 <= ncomp <= len(frame) or len(segment) != 4 + 2 * ncomp:
        raise ValueError("damaged JPEG scan header")
    for i in range(ncomp):
        cid, selectors = segment[1 + 2 * i:3 + 2 * i]
        if cid not in frame or (tables and ((0, selectors >> 4) not in tables or (1, selectors & 15) not in tables)):
            raise ValueError("damaged JPEG scan header")
    if tuple(segment[-3:]) != (0, 63, 0):  # baseline: whole spectrum, no successive approximation
        raise ValueError("damaged JPEG scan header")


def check_png(data):
    """Every chunk whole with its CRC right (libpng refuses a bad one), IHDR sane (size, depth,
    colour type), IEND last; else ValueError. Costs one CRC pass over the file (C speed)."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ValueError("damaged PNG header")
    width, height, depth, colour = struct.unpack_from(">IIBB", data, 16)
    _check_size(width, height)
    if depth not in _PNG_DEPTHS.get(colour, ()):
        raise ValueError("damaged PNG header")
    pos, kind = 8, b""
    while kind != b"IEND":
        if pos + 12 > len(data):
            raise ValueError("truncated PNG")
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 8 + length
        if end + 4 > len(data):
            raise ValueError("truncated PNG")
        if zlib.crc32(memoryview(data)[pos + 4:end]) != struct.unpack_from(">I", data, end)[0]:
            raise ValueError(f"damaged PNG ({kind.decode('latin-1')} chunk CRC)")
        pos = end + 4


def to_rgb8(img):
    """A PIL image as HWC uint8 RGB. 16/32-bit and float modes are scaled, not clipped
    (PIL's ``convert('RGB')`` clips a 16-bit greyscale image to white)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(img, dtype=np.float64)
        top = 255.0 if values.max(initial=0) <= 255 else (65535.0 if values.max() <= 65535 else values.max())
        grey = np.clip(np.round(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    return np.asarray(img.convert("RGB"))


def decode_with_pil(data):
    """Full decode with PIL (truncation is an error), as HWC uint8 RGB."""
    with Image.open(io.BytesIO(data)) as img:
        _check_size(*img.size)
        img.load()
        return to_rgb8(img)


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))


def not_regular(mode):
    """What a file of ``st_mode`` ``mode`` is when it is not a regular file (``'a FIFO'``), else None."""
    return None if stat.S_ISREG(mode) else next((what for test, what in _KINDS if test(mode)), "not a regular file")


def read_regular(path):
    """(bytes, stat) of the regular file ``path``; ``ValueError`` naming what it is otherwise.

    Opened non-blocking and checked before reading: a FIFO (or a device) in a dataset would block
    the one reader thread forever in ``open()`` or ``read()``; a socket cannot be opened at all."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        if err.errno == errno.ENXIO:  # a socket (or a device without its driver)
            raise ValueError(f"not a regular file ({not_regular(os.stat(path).st_mode)})") from None
        raise
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        kind = not_regular(info.st_mode)
        if kind:
            raise ValueError(f"not a regular file ({kind})")
        return f.read(), info


def _reason(err):
    # PIL names its in-memory buffer ("cannot identify image file <_io.BytesIO object at 0x...>")
    return "not an image file PIL can identify" if isinstance(err, Image.UnidentifiedImageError) else err


def read_encoded(path, passed=None):
    """(bytes, stamp): the file's bytes (uint8 array) if C++ Decode can take them safely, else the
    image decoded here and re-encoded as BMP; ``DatasetError`` naming the path if unreadable.

    ``stamp`` is the file's (size, mtime_ns) when its own bytes passed the checks (None when
    re-encoded). Given back as ``passed`` for the same path, it skips the checks while the file
    still has that size and time: a training run checks each file in its first epoch only."""
    try:
        data, info = read_regular(path)
        stamp = (info.st_size, info.st_mtime_ns)
        if not data:
            raise ValueError("empty file")
        if passed == stamp and len(data) == info.st_size:
            return np.frombuffer(data, np.uint8), stamp
        try:
            if data.startswith(JPEG_SOI + b"\xff"):
                check_jpeg(data)
            elif data.startswith(PNG_SIGNATURE):
                check_png(data)
            else:
                raise _Unsure()
            return np.frombuffer(data, np.uint8), stamp
        except _Unsure:
            out = io.BytesIO()
            Image.fromarray(decode_with_pil(data)).save(out, "BMP")
            return np.frombuffer(out.getvalue(), np.uint8), None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, struct.error) as err:
        raise DatasetError(f"unreadable image {path}: {_reason(err)}") from None


def read_rgb(path):
    """An image file as an HWC uint8 RGB array (PIL; 16-bit scaled); ``DatasetError`` naming the path."""
    try:
        data, _ = read_regular(path)
        if not data:
            raise ValueError("empty file")
        return decode_with_pil(data)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DatasetError(f"unreadable image {path}: {err}") from None
