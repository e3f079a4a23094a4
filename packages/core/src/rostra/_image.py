"""The image pipeline: what a caller may pass as a profile picture, and how a picture file is made safe to store.

Rules:
- ``classify_image`` decides what the argument is (clear, URL, or bytes) without decoding anything; it refuses
  oversized files from ``os.stat`` before reading them.
- ``prepare_image`` decides by content only (Pillow, PNG or JPEG), never by a file name or a declared type. It
  reads the pixel size from the header and refuses before decoding (decompression bombs), applies the EXIF
  orientation, and re-encodes in the same format with no metadata at all (EXIF, GPS, XMP, ICC, comments, PNG
  text chunks). It is CPU-bound and synchronous: the Client runs it in a worker thread.
- What is sent obeys ``max_bytes`` too: the re-encoded file is checked again (413). A JPEG is re-encoded with its
  source's quantization tables, each coefficient capped at quality 90, and its chroma subsampling, with optimized
  Huffman tables: a quality-60 photo re-encoded at a fixed quality 90 would be about twice as large.
- Only ``InvalidInputError`` (400) and ``PayloadTooLargeError`` (413) come out; Pillow's exceptions never do.
- It never fetches a URL: an http(s) URL is checked for shape and stored as given.
"""

from __future__ import annotations

import base64
import functools
import io
import os
import stat
import unicodedata
import urllib.parse
from dataclasses import dataclass

from PIL import Image, ImageOps, JpegImagePlugin

from ._errors import InvalidInputError, PayloadTooLargeError, RostraError

__all__ = [
    "ImageArg",
    "ImageLimits",
    "ImageURL",
    "PreparedImage",
    "classify_image",
    "prepare_image",
    "to_data_uri",
]

MAX_URL_CHARS = 2048
JPEG_QUALITY = 90

ImageArg = str | os.PathLike[str] | bytes | bytearray | memoryview

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8\xff"
# Pillow names a multi-picture JPEG (as cameras write) "MPO"; its first picture is a plain JPEG.
_FORMATS = {"PNG": ("image/png", "png"), "JPEG": ("image/jpeg", "jpg"), "MPO": ("image/jpeg", "jpg")}
# The PNG modes whose transparency lives in a tRNS chunk (``info["transparency"]``) rather than an alpha band.
_PNG_TRANSPARENCY_MODES = frozenset(("1", "L", "I", "I;16", "P", "RGB"))
_NOT_AN_IMAGE = "the image is not a PNG or JPEG image: give a PNG or JPEG file, bytes, or an http(s) URL"


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """Configurable image limits (Client options). All must be positive integers."""

    max_bytes: int = 5 * 1024 * 1024  # the file as given, and the re-encoded file that is sent
    max_pixels: int = 25_000_000  # width * height, from the header, before decoding
    thumbnail_px: int = 128  # the thumbnail's longest side
    max_inline_bytes: int = 256 * 1024  # image + thumbnail when stored inline (no upload service)

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "thumbnail_px", "max_inline_bytes"):
            limit = getattr(self, name)
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise InvalidInputError(f"image limit {name} must be a positive integer, not {limit!r}")


@dataclass(frozen=True, slots=True)
class ImageURL:
    """An http(s) URL given by the caller, stored as given."""

    url: str


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """A picture re-encoded without metadata, with its thumbnail."""

    data: bytes
    content_type: str  # "image/png" | "image/jpeg"
    extension: str  # "png" | "jpg"
    width: int
    height: int
    thumbnail: bytes
    thumbnail_content_type: str


def _too_large(size: int, limits: ImageLimits) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"the image is {size} bytes; the limit is {limits.max_bytes} bytes: shrink it or raise the max_bytes limit"
    )


def _check_url(url: str) -> ImageURL:
    hint = "give a URL like 'https://example.com/me.png'"
    if len(url) > MAX_URL_CHARS:
        raise InvalidInputError(f"the image URL is longer than {MAX_URL_CHARS} characters: {hint}")
    if any(char.isspace() or unicodedata.category(char) in ("Cc", "Cs") or char in "\ufffe\uffff" for char in url):
        raise InvalidInputError(f"the image URL contains whitespace or a control character: percent-encode it; {hint}")
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        raise InvalidInputError(f"the image URL cannot be parsed: {hint}") from None
    if not host:
        raise InvalidInputError(f"the image URL has no host: {hint}")
    return ImageURL(url)


def _read_file(path: str, limits: ImageLimits) -> bytes:
    where = f"the image file {path!r}"
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InvalidInputError(f"{where} does not exist: check the path") from None
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{where} cannot be read ({type(exc).__name__}): check the path") from None
    if stat.S_ISDIR(info.st_mode):
        raise InvalidInputError(f"{where} is a directory: give the path of a PNG or JPEG file")
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInputError(f"{where} is not a regular file: give the path of a PNG or JPEG file")
    if info.st_size > limits.max_bytes:
        raise _too_large(info.st_size, limits)
    try:
        with open(path, "rb") as file:
            # One byte over the limit tells a file that grew after the stat.
            data = file.read(limits.max_bytes + 1)
    except OSError as exc:
        raise InvalidInputError(f"{where} cannot be read ({type(exc).__name__}): check its permissions") from None
    if len(data) > limits.max_bytes:
        raise _too_large(len(data), limits)
    if not data:
        raise InvalidInputError(f"{where} is empty: give a PNG or JPEG file")
    return data


def classify_image(value: object, limits: ImageLimits) -> ImageURL | bytes | None:
    """What an ``image`` argument means: None to clear the picture, an ``ImageURL``, or the picture's bytes.

    "" clears; an http(s) URL is checked for shape (parseable, a host, no whitespace, <= 2048 characters); bytes-like
    values and files (str or PathLike paths) give their bytes. Raises InvalidInputError for other URL schemes,
    missing, unreadable, non-regular or empty files, empty bytes and other types; PayloadTooLargeError for more than
    ``limits.max_bytes`` (a file's size is checked before it is read).
    """
    if isinstance(value, bytes | bytearray | memoryview):
        size = value.nbytes if isinstance(value, memoryview) else len(value)
        if size > limits.max_bytes:
            raise _too_large(size, limits)
        if size == 0:
            raise InvalidInputError('the image bytes are empty: give a PNG or JPEG image, or "" to clear it')
        return bytes(value)
    if isinstance(value, str):
        if value == "":
            return None
        if value[:8].lower().startswith(("http://", "https://")):
            return _check_url(value)
        if "://" in value or value[:5].lower() == "data:":
            raise InvalidInputError("the image URL scheme is not supported: give an http(s) URL, a file path or bytes")
        return _read_file(value, limits)
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        if not isinstance(path, str):
            raise InvalidInputError("the image path must be a str path, not bytes: decode it first")
        return _read_file(path, limits)
    raise InvalidInputError(f'image must be a URL, a file path, bytes or "" to clear it, not {type(value).__name__}')


def _open(data: bytes, limits: ImageLimits) -> Image.Image:
    """The picture opened from its header only, checked against the pixel limit."""
    try:
        image = Image.open(io.BytesIO(data), formats=("PNG", "JPEG"))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PayloadTooLargeError(
            "the image has too many pixels (a possible decompression bomb): give a smaller picture"
        ) from None
    except Exception:
        if data.startswith((_PNG_SIGNATURE, _JPEG_SIGNATURE)):
            raise InvalidInputError("the image is corrupt: give a complete PNG or JPEG file") from None
        raise InvalidInputError(_NOT_AN_IMAGE) from None
    width, height = image.size
    if width * height > limits.max_pixels:
        raise PayloadTooLargeError(
            f"the image is {width}x{height} = {width * height} pixels; the limit is {limits.max_pixels}: "
            "scale it down or raise the max_pixels limit"
        )
    return image


@functools.cache
def _cap_tables() -> tuple[list[int], list[int]]:
    """The quantization tables (natural order) Pillow's encoder uses at ``JPEG_QUALITY``: luminance, chrominance."""
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="JPEG", quality=JPEG_QUALITY)
    with Image.open(out) as reference:
        tables: dict[int, list[int]] = getattr(reference, "quantization", {})
        return list(tables[0]), list(tables[1])


def _jpeg_options(source: Image.Image) -> dict[str, object]:
    """Encoder options that keep ``source``'s JPEG quality (never finer than ``JPEG_QUALITY``) and subsampling.

    Each coefficient of the source's quantization tables is kept or, when finer, coarsened to its value at
    ``JPEG_QUALITY``. Tables that libjpeg's baseline encoder cannot take (none, more than 4, over 255) give
    ``quality=JPEG_QUALITY`` instead.
    """
    tables: dict[int, list[int]] = getattr(source, "quantization", None) or {}
    ordered = [list(tables[index]) for index in sorted(tables)]
    options: dict[str, object] = {"optimize": True}
    if not 1 <= len(ordered) <= 4 or any(len(table) != 64 or max(table) > 255 for table in ordered):
        options["quality"] = JPEG_QUALITY
    else:
        options["qtables"] = [
            [max(value, cap) for value, cap in zip(table, _cap_tables()[min(index, 1)], strict=True)]
            for index, table in enumerate(ordered)
        ]
    sampling = JpegImagePlugin.get_sampling(source) if isinstance(source, JpegImagePlugin.JpegImageFile) else -1
    if sampling != -1:
        options["subsampling"] = sampling
    return options


def _encode(image: Image.Image, image_format: str, jpeg_options: dict[str, object] | None = None) -> bytes:
    """``image`` encoded with nothing but its pixels (and PNG transparency); no metadata of any kind.

    A JPEG uses ``jpeg_options`` (from ``_jpeg_options``), else quality ``JPEG_QUALITY``.
    """
    options: dict[str, object] = {}
    if image_format == "PNG":
        transparency = image.info.get("transparency")
        if transparency is not None and image.mode in _PNG_TRANSPARENCY_MODES:
            options["transparency"] = transparency
    else:
        options.update(jpeg_options or {"quality": JPEG_QUALITY})
    # Pillow's encoders copy ICC profiles, comments and transparency from ``info``: start from nothing.
    image.info = {}
    out = io.BytesIO()
    image.save(out, format=image_format, **options)
    return out.getvalue()


def _thumbnail(image: Image.Image, image_format: str, limits: ImageLimits) -> bytes:
    """A copy of ``image`` whose longest side is at most ``limits.thumbnail_px`` (never enlarged)."""
    if image_format == "PNG":
        has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
        small = image.convert("RGBA" if has_alpha else "RGB")
    else:
        small = image.convert("L" if image.mode == "L" else "RGB")
    small.thumbnail((limits.thumbnail_px, limits.thumbnail_px), Image.Resampling.LANCZOS)
    return _encode(small, image_format)


def prepare_image(data: bytes, limits: ImageLimits) -> PreparedImage:
    """The picture in ``data`` (PNG or JPEG, by content) upright, re-encoded without metadata, with a thumbnail.

    Raises PayloadTooLargeError when ``data`` or the re-encoded picture exceeds ``limits.max_bytes``, or the header
    claims more than ``limits.max_pixels`` pixels (before decoding); InvalidInputError when it is empty, not PNG or
    JPEG, truncated or corrupt.
    """
    if len(data) > limits.max_bytes:
        raise _too_large(len(data), limits)
    if not data:
        raise InvalidInputError("the image is empty: give a PNG or JPEG image")
    with _open(data, limits) as opened:
        if opened.format not in _FORMATS:
            raise InvalidInputError(_NOT_AN_IMAGE)
        content_type, extension = _FORMATS[opened.format]
        encode_as = "JPEG" if extension == "jpg" else "PNG"
        try:
            opened.load()
            upright = ImageOps.exif_transpose(opened)
            thumbnail = _thumbnail(upright, encode_as, limits)
            jpeg_options = _jpeg_options(opened) if encode_as == "JPEG" else None
            encoded = _encode(upright, encode_as, jpeg_options)
        except RostraError:
            raise
        except MemoryError:
            raise PayloadTooLargeError("the image is too large to decode: give a smaller picture") from None
        except Exception:
            raise InvalidInputError("the image is truncated or corrupt: give a complete PNG or JPEG file") from None
    if len(encoded) > limits.max_bytes:
        raise PayloadTooLargeError(
            f"the image re-encoded without its metadata is {len(encoded)} bytes; the limit is {limits.max_bytes} "
            "bytes: give a picture with fewer pixels or a lower JPEG quality, or raise the max_bytes limit"
        )
    return PreparedImage(
        data=encoded,
        content_type=content_type,
        extension=extension,
        width=upright.width,
        height=upright.height,
        thumbnail=thumbnail,
        thumbnail_content_type=content_type,
    )


def to_data_uri(data: bytes, content_type: str) -> str:
    """``data`` as an RFC 2397 base64 ``data:`` URI, e.g. ``data:image/png;base64,iVBOR...``."""
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"
