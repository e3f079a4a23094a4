"""The image pipeline: argument classification, content detection, limits, metadata stripping, thumbnails.

Every picture is generated here with Pillow; "bombs" are hand-made PNG headers, so nothing large is ever decoded.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import pytest
from PIL import ExifTags, Image, JpegImagePlugin
from PIL.PngImagePlugin import PngImageFile, PngInfo

from rostra._errors import InvalidInputError, PayloadTooLargeError
from rostra._image import ImageLimits, ImageURL, classify_image, prepare_image, to_data_uri

LIMITS = ImageLimits()
RED = (200, 10, 10)


def _png(size: tuple[int, int] = (40, 20), mode: str = "RGB", color: object = RED, **save: object) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, format="PNG", **save)  # type: ignore[arg-type]
    return out.getvalue()


def _jpeg(size: tuple[int, int] = (40, 20), **save: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, RED).save(out, format="JPEG", **save)
    return out.getvalue()


def _exif_with_gps(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "PhoneCam"
    exif[ExifTags.IFD.GPSInfo] = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (48.0, 51.0, 30.0)}
    return exif


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` RGB pixels, followed by a tiny IDAT: nothing to decode."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")


def _png_chunk_types(data: bytes) -> list[str]:
    """The chunk types of a PNG file in order, each run of IDAT chunks counted once."""
    kinds: list[str] = []
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8].decode("ascii")
        if not kinds or kinds[-1] != kind:
            kinds.append(kind)
        pos += 12 + length
    return kinds


def _jpeg_markers(data: bytes) -> list[int]:
    """The marker codes of a JPEG file's header segments, up to and including the start of scan (0xDA)."""
    markers: list[int] = []
    pos = 2  # after SOI
    while True:
        marker = data[pos + 1]
        markers.append(marker)
        if marker == 0xDA:
            return markers
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length


# --- classify_image ------------------------------------------------------------------------------------------------


def test_classify_empty_string_clears_the_picture() -> None:
    assert classify_image("", LIMITS) is None


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/me.png",
        "http://example.com/me.png",
        "HTTPS://Example.com/Me.PNG?size=large#top",
        "https://127.0.0.1:8443/a.jpg",
        "https://[::1]/a.jpg",
        "https://example.com/" + "a" * (2048 - 20),
    ],
)
def test_classify_http_url_is_stored_as_given(url: str) -> None:
    assert classify_image(url, LIMITS) == ImageURL(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://",
        "https:///path-only",
        "https://exa mple.com/a.png",
        "https://example.com/a.png\n",
        "https://example.com/\x00",
        "https://example.com:99999/a.png",
        "https://example.com:port/a.png",
        "https://[::1/a.png",
        "https://example.com/" + "a" * (2049 - 20),
    ],
)
def test_classify_malformed_http_url_is_400(url: str) -> None:
    with pytest.raises(InvalidInputError):
        classify_image(url, LIMITS)


@pytest.mark.parametrize(
    "url", ["file://host/me.png", "ftp://example.com/a.png", "data:image/png;base64,iVBORw==", "javascript://x"]
)
def test_classify_other_url_scheme_is_400(url: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        classify_image(url, LIMITS)
    assert caught.value.message == ("the image URL scheme is not supported: give an http(s) URL, a file path or bytes")


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_classify_bytes_like_gives_bytes(wrap: type) -> None:
    data = _png()
    result = classify_image(wrap(data), LIMITS)
    assert type(result) is bytes
    assert result == data


def test_classify_empty_bytes_is_400() -> None:
    with pytest.raises(InvalidInputError):
        classify_image(b"", LIMITS)


def test_classify_bytes_over_max_bytes_is_413() -> None:
    with pytest.raises(PayloadTooLargeError) as caught:
        classify_image(b"x" * 101, ImageLimits(max_bytes=100))
    assert caught.value.status_code == 413
    assert caught.value.message == (
        "the image is 101 bytes; the limit is 100 bytes: shrink it or raise the max_bytes limit"
    )


def test_classify_bytes_at_max_bytes_is_accepted() -> None:
    assert classify_image(b"x" * 100, ImageLimits(max_bytes=100)) == b"x" * 100


def test_classify_str_path_gives_file_bytes(tmp_path: Path) -> None:
    path = tmp_path / "me.png"
    path.write_bytes(_png())
    assert classify_image(str(path), LIMITS) == _png()


def test_classify_pathlike_gives_file_bytes(tmp_path: Path) -> None:
    path = tmp_path / "me.png"
    path.write_bytes(_png())
    assert classify_image(path, LIMITS) == _png()


def test_classify_missing_file_is_400(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as caught:
        classify_image(tmp_path / "nope.png", LIMITS)
    assert caught.value.message == f"the image file {str(tmp_path / 'nope.png')!r} does not exist: check the path"


def test_classify_directory_is_400(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        classify_image(tmp_path, LIMITS)


def test_classify_fifo_is_400_without_reading(tmp_path: Path) -> None:
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    with pytest.raises(InvalidInputError):
        classify_image(path, LIMITS)


def test_classify_empty_file_is_400(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(InvalidInputError):
        classify_image(path, LIMITS)


def test_classify_file_over_max_bytes_is_413(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(b"x" * 101)
    with pytest.raises(PayloadTooLargeError):
        classify_image(path, ImageLimits(max_bytes=100))


def test_classify_path_with_nul_is_400() -> None:
    with pytest.raises(InvalidInputError):
        classify_image("me\x00.png", LIMITS)


@pytest.mark.parametrize("value", [None, 42, 1.5, ["me.png"], {"url": "https://example.com"}])
def test_classify_other_type_is_400(value: object) -> None:
    with pytest.raises(InvalidInputError):
        classify_image(value, LIMITS)


@pytest.mark.parametrize("field", ["max_bytes", "max_pixels", "thumbnail_px", "max_inline_bytes"])
@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_limits_must_be_positive_integers(field: str, bad: object) -> None:
    with pytest.raises(InvalidInputError):
        ImageLimits(**{field: bad})  # type: ignore[arg-type]


# --- prepare_image: detection by content ---------------------------------------------------------------------------


def test_prepare_png_gives_png() -> None:
    prepared = prepare_image(_png((40, 20)), LIMITS)
    assert (prepared.content_type, prepared.extension, prepared.width, prepared.height) == ("image/png", "png", 40, 20)
    with Image.open(io.BytesIO(prepared.data)) as decoded:
        assert (decoded.format, decoded.size, decoded.getpixel((0, 0))) == ("PNG", (40, 20), RED)


def test_prepare_jpeg_gives_jpeg() -> None:
    prepared = prepare_image(_jpeg((40, 20)), LIMITS)
    assert (prepared.content_type, prepared.extension, prepared.width, prepared.height) == (
        "image/jpeg",
        "jpg",
        40,
        20,
    )
    with Image.open(io.BytesIO(prepared.data)) as decoded:
        assert (decoded.format, decoded.size) == ("JPEG", (40, 20))


def test_prepare_multi_picture_jpeg_gives_its_first_picture_as_plain_jpeg() -> None:
    out = io.BytesIO()
    Image.new("RGB", (40, 20), RED).save(out, format="MPO", save_all=True, append_images=[Image.new("RGB", (8, 8))])
    prepared = prepare_image(out.getvalue(), LIMITS)
    assert (prepared.content_type, prepared.width, prepared.height) == ("image/jpeg", 40, 20)
    with Image.open(io.BytesIO(prepared.data)) as decoded:
        assert (decoded.format, getattr(decoded, "n_frames", 1)) == ("JPEG", 1)


def test_prepare_png_named_jpg_is_detected_as_png(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(_png())
    data = classify_image(path, LIMITS)
    assert isinstance(data, bytes)
    prepared = prepare_image(data, LIMITS)
    assert (prepared.content_type, prepared.extension) == ("image/png", "png")


def test_prepare_non_image_file_is_400(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_bytes(b"Dear diary, this is not a picture.\n")
    data = classify_image(path, LIMITS)
    assert isinstance(data, bytes)
    with pytest.raises(InvalidInputError) as caught:
        prepare_image(data, LIMITS)
    assert caught.value.message == (
        "the image is not a PNG or JPEG image: give a PNG or JPEG file, bytes, or an http(s) URL"
    )


@pytest.mark.parametrize("image_format", ["GIF", "BMP", "WEBP", "TIFF"])
def test_prepare_other_image_format_is_400(image_format: str) -> None:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), RED).save(out, format=image_format)
    with pytest.raises(InvalidInputError) as caught:
        prepare_image(out.getvalue(), LIMITS)
    assert caught.value.message == (
        "the image is not a PNG or JPEG image: give a PNG or JPEG file, bytes, or an http(s) URL"
    )


def test_prepare_empty_bytes_is_400() -> None:
    with pytest.raises(InvalidInputError):
        prepare_image(b"", LIMITS)


def test_prepare_png_truncated_in_its_pixels_is_400() -> None:
    noisy = Image.frombytes("RGB", (64, 64), bytes(range(256)) * 48)
    out = io.BytesIO()
    noisy.save(out, format="PNG")
    data = out.getvalue()
    with pytest.raises(InvalidInputError) as caught:
        prepare_image(data[: len(data) // 2], LIMITS)
    assert caught.value.message == "the image is truncated or corrupt: give a complete PNG or JPEG file"


def test_prepare_png_truncated_in_its_header_is_400() -> None:
    with pytest.raises(InvalidInputError) as caught:
        prepare_image(_png()[:20], LIMITS)
    assert caught.value.message == "the image is corrupt: give a complete PNG or JPEG file"


def test_prepare_jpeg_truncated_in_its_header_is_400() -> None:
    with pytest.raises(InvalidInputError) as caught:
        prepare_image(_jpeg()[:40], LIMITS)
    assert caught.value.message == "the image is corrupt: give a complete PNG or JPEG file"


# --- prepare_image: limits -----------------------------------------------------------------------------------------


def test_prepare_over_max_bytes_is_413() -> None:
    data = _png()
    with pytest.raises(PayloadTooLargeError) as caught:
        prepare_image(data, ImageLimits(max_bytes=len(data) - 1))
    assert caught.value.status_code == 413


def test_prepare_pixel_bomb_is_413_before_decoding() -> None:
    with pytest.raises(PayloadTooLargeError) as caught:
        prepare_image(_png_header(6000, 6000), ImageLimits(max_pixels=1_000_000))
    assert caught.value.message == (
        "the image is 6000x6000 = 36000000 pixels; the limit is 1000000: scale it down or raise the max_pixels limit"
    )


def test_prepare_pixels_at_max_pixels_are_accepted() -> None:
    prepared = prepare_image(_png((40, 20)), ImageLimits(max_pixels=800))
    assert (prepared.width, prepared.height) == (40, 20)


def test_prepare_pillow_decompression_bomb_is_413_even_under_a_raised_limit() -> None:
    # 400 million pixels: over twice Pillow's own limit, so Pillow refuses it while opening.
    with pytest.raises(PayloadTooLargeError) as caught:
        prepare_image(_png_header(20000, 20000), ImageLimits(max_pixels=10**12))
    assert caught.value.message == (
        "the image has too many pixels (a possible decompression bomb): give a smaller picture"
    )


# --- prepare_image: the size of what is sent ----------------------------------------------------------------------


def _photo(size: tuple[int, int] = (400, 300)) -> Image.Image:
    """A photo-like picture: smooth colour gradients under sensor-like noise (what makes JPEG re-encoding grow)."""
    gradient = Image.linear_gradient("L")
    smooth = Image.merge(
        "RGB",
        (
            gradient.resize(size),
            gradient.transpose(Image.Transpose.ROTATE_90).resize(size),
            Image.radial_gradient("L").resize(size),
        ),
    )
    noise = Image.merge("RGB", [Image.effect_noise(size, sigma) for sigma in (30, 40, 50)])
    return Image.blend(smooth, noise, 0.35)


def _photo_jpeg(size: tuple[int, int] = (400, 300), **save: object) -> bytes:
    out = io.BytesIO()
    _photo(size).save(out, format="JPEG", **save)
    return out.getvalue()


def _quantization(data: bytes) -> dict[int, list[int]]:
    with Image.open(io.BytesIO(data)) as decoded:
        return {index: list(table) for index, table in decoded.quantization.items()}  # type: ignore[attr-defined]


def _sampling(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as decoded:
        return JpegImagePlugin.get_sampling(decoded)


def test_prepare_jpeg_keeps_the_quantization_of_a_lower_quality_source() -> None:
    source = _photo_jpeg(quality=60)
    prepared = prepare_image(source, LIMITS)
    assert _quantization(prepared.data) == _quantization(source)


def test_prepare_jpeg_of_a_lower_quality_photo_is_no_larger_than_the_source() -> None:
    source = _photo_jpeg(quality=60)
    prepared = prepare_image(source, LIMITS)
    assert len(prepared.data) <= len(source)


def test_prepare_jpeg_of_a_rotated_photo_keeps_the_source_quantization() -> None:
    source = _photo_jpeg(quality=70, exif=_exif_with_gps(orientation=6))
    prepared = prepare_image(source, LIMITS)
    assert ((prepared.width, prepared.height), _quantization(prepared.data)) == ((300, 400), _quantization(source))


def test_prepare_jpeg_finer_than_quality_90_is_capped_at_quality_90() -> None:
    source = _photo_jpeg(quality=100)
    prepared = prepare_image(source, LIMITS)
    assert _quantization(prepared.data) == _quantization(_photo_jpeg((8, 8), quality=90))


def test_prepare_jpeg_keeps_the_source_chroma_subsampling() -> None:
    source = _photo_jpeg(quality=80, subsampling=0)  # 4:4:4
    prepared = prepare_image(source, LIMITS)
    assert _sampling(prepared.data) == 0


def test_prepare_grayscale_jpeg_keeps_its_single_table() -> None:
    out = io.BytesIO()
    _photo().convert("L").save(out, format="JPEG", quality=50)
    prepared = prepare_image(out.getvalue(), LIMITS)
    assert _quantization(prepared.data) == _quantization(out.getvalue())


def test_prepare_image_that_grows_over_max_bytes_when_re_encoded_is_413() -> None:
    # A progressive, Huffman-optimized source: the baseline re-encoding is a few percent larger.
    source = _photo_jpeg(quality=80, progressive=True, optimize=True)
    sent = len(prepare_image(source, ImageLimits(max_bytes=10 * len(source))).data)
    assert sent > len(source)
    with pytest.raises(PayloadTooLargeError) as caught:
        prepare_image(source, ImageLimits(max_bytes=len(source)))
    assert (caught.value.status_code, caught.value.message) == (
        413,
        f"the image re-encoded without its metadata is {sent} bytes; the limit is {len(source)} bytes: "
        "give a picture with fewer pixels or a lower JPEG quality, or raise the max_bytes limit",
    )


def test_prepare_image_re_encoded_at_exactly_max_bytes_is_accepted() -> None:
    source = _photo_jpeg(quality=80, progressive=True, optimize=True)
    sent = len(prepare_image(source, ImageLimits(max_bytes=10 * len(source))).data)
    assert len(prepare_image(source, ImageLimits(max_bytes=sent)).data) == sent


# --- prepare_image: metadata ---------------------------------------------------------------------------------------


def test_prepare_jpeg_drops_exif_and_gps() -> None:
    source = _jpeg(exif=_exif_with_gps())
    with Image.open(io.BytesIO(source)) as original:
        assert original.getexif().get_ifd(ExifTags.IFD.GPSInfo) != {}
    prepared = prepare_image(source, LIMITS)
    with Image.open(io.BytesIO(prepared.data)) as decoded:
        assert "exif" not in decoded.info
        assert len(decoded.getexif()) == 0
    assert b"Exif" not in prepared.data


def test_prepare_jpeg_keeps_only_the_jfif_app_segment() -> None:
    source = _jpeg(exif=_exif_with_gps(), comment=b"secret", xmp=b"<x:xmpmeta/>", icc_profile=b"fake-icc")
    prepared = prepare_image(source, LIMITS)
    header = _jpeg_markers(prepared.data)
    app_and_comment = [marker for marker in header if 0xE0 <= marker <= 0xEF or marker == 0xFE]
    assert app_and_comment == [0xE0]


def test_prepare_jpeg_thumbnail_has_no_metadata() -> None:
    prepared = prepare_image(_jpeg(exif=_exif_with_gps(), comment=b"secret"), LIMITS)
    app_and_comment = [m for m in _jpeg_markers(prepared.thumbnail) if 0xE0 <= m <= 0xEF or m == 0xFE]
    assert app_and_comment == [0xE0]


def test_prepare_jpeg_applies_exif_orientation() -> None:
    # Orientation 6: the stored 40x20 pixels are shown rotated a quarter turn, as 20x40.
    prepared = prepare_image(_jpeg((40, 20), exif=_exif_with_gps(orientation=6)), LIMITS)
    assert (prepared.width, prepared.height) == (20, 40)
    with Image.open(io.BytesIO(prepared.data)) as decoded:
        assert decoded.size == (20, 40)


def test_prepare_png_drops_text_chunks() -> None:
    info = PngInfo()
    info.add_text("Comment", "secret")
    info.add_text("Author", "Ada", zip=True)
    info.add_itxt("Location", "48.85N 2.35E")
    source = _png(pnginfo=info)
    assert {"tEXt", "zTXt", "iTXt"} <= set(_png_chunk_types(source))
    prepared = prepare_image(source, LIMITS)
    assert _png_chunk_types(prepared.data) == ["IHDR", "IDAT", "IEND"]
    with Image.open(io.BytesIO(prepared.data)) as decoded:
        assert isinstance(decoded, PngImageFile)
        assert decoded.text == {}


def test_prepare_png_drops_exif_and_icc() -> None:
    source = _png(exif=_exif_with_gps(), icc_profile=b"fake-icc", dpi=(300, 300))
    assert {"eXIf", "iCCP", "pHYs"} <= set(_png_chunk_types(source))
    prepared = prepare_image(source, LIMITS)
    assert _png_chunk_types(prepared.data) == ["IHDR", "IDAT", "IEND"]


def test_prepare_png_keeps_palette_transparency() -> None:
    source = _png((8, 8), mode="P", color=0, transparency=0)
    prepared = prepare_image(source, LIMITS)
    assert _png_chunk_types(prepared.data) == ["IHDR", "PLTE", "tRNS", "IDAT", "IEND"]
    with Image.open(io.BytesIO(prepared.data)) as decoded:
        assert decoded.convert("RGBA").getpixel((0, 0)) == (0, 0, 0, 0)


def test_prepare_png_keeps_alpha() -> None:
    prepared = prepare_image(_png((8, 8), mode="RGBA", color=(1, 2, 3, 4)), LIMITS)
    with Image.open(io.BytesIO(prepared.data)) as decoded:
        assert (decoded.mode, decoded.getpixel((0, 0))) == ("RGBA", (1, 2, 3, 4))


# --- prepare_image: thumbnails -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [((400, 200), (128, 64)), ((200, 400), (64, 128)), ((128, 128), (128, 128)), ((50, 30), (50, 30))],
)
def test_thumbnail_longest_side_is_at_most_thumbnail_px(size: tuple[int, int], expected: tuple[int, int]) -> None:
    prepared = prepare_image(_png(size), LIMITS)
    with Image.open(io.BytesIO(prepared.thumbnail)) as thumbnail:
        assert thumbnail.size == expected


def test_thumbnail_px_is_configurable() -> None:
    prepared = prepare_image(_jpeg((400, 200)), ImageLimits(thumbnail_px=32))
    with Image.open(io.BytesIO(prepared.thumbnail)) as thumbnail:
        assert thumbnail.size == (32, 16)


def test_thumbnail_of_jpeg_is_jpeg() -> None:
    prepared = prepare_image(_jpeg((400, 200)), LIMITS)
    assert prepared.thumbnail_content_type == "image/jpeg"
    with Image.open(io.BytesIO(prepared.thumbnail)) as thumbnail:
        assert thumbnail.format == "JPEG"


def test_thumbnail_of_png_with_alpha_keeps_alpha() -> None:
    prepared = prepare_image(_png((400, 200), mode="RGBA", color=(10, 20, 30, 128)), LIMITS)
    assert prepared.thumbnail_content_type == "image/png"
    with Image.open(io.BytesIO(prepared.thumbnail)) as thumbnail:
        assert (thumbnail.format, thumbnail.mode, thumbnail.getchannel("A").getpixel((0, 0))) == ("PNG", "RGBA", 128)


def test_thumbnail_of_png_with_palette_transparency_has_alpha() -> None:
    prepared = prepare_image(_png((400, 200), mode="P", color=0, transparency=0), LIMITS)
    with Image.open(io.BytesIO(prepared.thumbnail)) as thumbnail:
        assert (thumbnail.mode, thumbnail.getchannel("A").getpixel((0, 0))) == ("RGBA", 0)


def test_thumbnail_follows_exif_orientation() -> None:
    prepared = prepare_image(_jpeg((400, 200), exif=_exif_with_gps(orientation=6)), LIMITS)
    with Image.open(io.BytesIO(prepared.thumbnail)) as thumbnail:
        assert thumbnail.size == (64, 128)


# --- to_data_uri ---------------------------------------------------------------------------------------------------


def test_data_uri_is_base64_with_content_type() -> None:
    assert to_data_uri(b"\x89PNG", "image/png") == "data:image/png;base64,iVBORw=="
