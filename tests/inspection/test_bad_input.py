"""Bad input to the station API: a clear 4xx JSON error, and nothing stored (no row, no file).

Every request here is the accepted baseline request (see the first test) with one thing wrong,
so each refusal is due to that one thing.
"""

import functools
import io
import struct
import zlib
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageFile
from rest_framework.test import APIClient

from inspection.models import Inspection
from tests.helpers import image_bytes

URL = "/api/v1/inspections/"
pytestmark = pytest.mark.django_db(transaction=True)


# Helpers ----------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def idat_span(png: bytes) -> tuple[int, int]:
    """(offset of the first IDAT chunk's data, its length) in a PNG file."""
    pos = 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        if png[pos + 4 : pos + 8] == b"IDAT":
            return pos + 8, length
        pos += 12 + length
    raise AssertionError("no IDAT chunk")


def png_with_flipped_idat_byte(offset_in_idat: int) -> bytes:
    """A valid PNG with one byte of its IDAT data inverted, so the chunk's CRC no longer matches."""
    png = bytearray(image_bytes("PNG"))
    start, length = idat_span(bytes(png))
    assert 0 <= offset_in_idat < length
    png[start + offset_in_idat] ^= 0xFF
    assert (
        zlib.crc32(png[start - 4 : start + length])
        != struct.unpack(">I", png[start + length : start + length + 4])[0]
    )
    return bytes(png)


@functools.cache
def zero_png(width: int, height: int) -> bytes:
    """An 8-bit grayscale PNG of zeros, built row by row: a decompression bomb of a few hundred
    KB that would expand to width*height bytes, made without allocating those pixels here."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte 0, then the pixels
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit, grayscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", b"".join(parts))
        + png_chunk(b"IEND", b"")
    )


def api_client(authorization: str | None = None) -> APIClient:
    """A client that answers a server error as a 500 response instead of raising it."""
    client = APIClient(raise_request_exception=False)
    if authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    return client


def post(client, *, image=None, name="part.png", external_id="SN-1", **fields):
    """POST the baseline multipart request; image=None sends the baseline image, omit via
    image=False, and external_id=None leaves that field out."""
    data = dict(fields)
    if image is not False:
        content = image_bytes("PNG") if image is None else image
        data["image"] = SimpleUploadedFile(name, content, content_type="application/octet-stream")
    if external_id is not None:
        data["external_id"] = external_id
    return client.post(URL, data, format="multipart")


def assert_refused(response, status: int, error: str, detail_part: str, *, field=None) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error
    assert detail_part.lower() in str(body["detail"]).lower()
    if field is not None:
        assert body["field"] == field


# Fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def station_and_token(make_line, station_with_token):
    # human_only: an accepted request is answered without a model, in the request itself.
    line = make_line(name="line-bad-input")
    return station_with_token(line, name="cam-bad-input")


@pytest.fixture
def station_client(station_and_token):
    _, token = station_and_token
    return api_client(f"Bearer {token}")


@pytest.fixture
def nothing_stored(settings):
    """A check: no inspection row, and no file under MEDIA_ROOT that was not there at the start
    (the media directory is shared by the whole session, so compare rather than expect empty)."""

    def files() -> set[Path]:
        return {path for path in Path(settings.MEDIA_ROOT).rglob("*") if path.is_file()}

    before = files()

    def check() -> None:
        assert Inspection.objects.count() == 0
        assert files() == before

    return check


# The baseline -----------------------------------------------------------------------------


def test_the_baseline_request_is_accepted_and_stores_a_row_and_a_file(station_client, settings):
    response = post(station_client)
    assert response.status_code == 201, response.content
    inspection = Inspection.objects.get()
    assert (Path(settings.MEDIA_ROOT) / inspection.image.name).is_file()


# Image -----------------------------------------------------------------------------------


def test_missing_image_field_is_refused_and_nothing_is_stored(station_client, nothing_stored):
    response = post(station_client, image=False)
    assert_refused(response, 400, "image_missing", "'image' is required", field="image")
    nothing_stored()


def test_image_sent_as_a_text_field_counts_as_missing_and_nothing_is_stored(
    station_client, nothing_stored
):
    response = station_client.post(
        URL, {"image": "not-a-file", "external_id": "SN-1"}, format="multipart"
    )
    assert_refused(response, 400, "image_missing", "'image' is required", field="image")
    nothing_stored()


def test_empty_image_file_is_refused_and_nothing_is_stored(station_client, nothing_stored):
    response = post(station_client, image=b"")
    assert_refused(response, 400, "image_empty", "empty", field="image")
    nothing_stored()


def test_non_image_bytes_are_refused_as_unsupported_and_nothing_is_stored(
    station_client, nothing_stored
):
    response = post(station_client, image=b"hello" * 100, name="x.png")
    assert_refused(response, 415, "image_unsupported", "not a recognised image", field="image")
    nothing_stored()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image_is_refused_as_corrupt_and_nothing_is_stored(
    station_client, nothing_stored, fmt
):
    whole = image_bytes(fmt)
    response = post(station_client, image=whole[: len(whole) // 2], name=f"part.{fmt.lower()}")
    assert_refused(response, 400, "image_corrupt", "truncated", field="image")
    nothing_stored()


def test_png_whose_idat_does_not_inflate_is_refused_as_corrupt_and_nothing_is_stored(
    station_client, nothing_stored
):
    # The first IDAT byte is the zlib header: inverting it breaks the compressed stream.
    response = post(station_client, image=png_with_flipped_idat_byte(0))
    assert_refused(response, 400, "image_corrupt", "corrupt", field="image")
    nothing_stored()


def test_png_with_an_idat_crc_mismatch_is_refused_as_corrupt_and_nothing_is_stored(
    station_client, nothing_stored
):
    # A byte in the middle of the deflate data: the stream still inflates (to other pixels),
    # so only the chunk's CRC shows the file is corrupt.
    png = image_bytes("PNG")
    _, length = idat_span(png)
    response = post(station_client, image=png_with_flipped_idat_byte(length // 2))
    assert_refused(response, 400, "image_corrupt", "corrupt", field="image")
    nothing_stored()


def test_image_over_the_byte_limit_is_refused_and_nothing_is_stored(
    station_client, nothing_stored, settings
):
    image = image_bytes("PNG")
    settings.LOUPE_MAX_IMAGE_BYTES = len(image) - 1
    response = post(station_client, image=image)
    assert_refused(
        response, 413, "image_too_large", f"the limit is {len(image) - 1} bytes", field="image"
    )
    nothing_stored()


@pytest.fixture
def decoded_sizes(monkeypatch):
    """The (width, height) of every image whose pixels Pillow decodes during the test."""
    sizes = []
    original = ImageFile.ImageFile.load

    def load(self):
        sizes.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return sizes


@pytest.mark.parametrize(
    "size",
    [
        (20000, 20000),  # 400M pixels: past Pillow's own bomb threshold too
        (8000, 8000),  # 64M pixels: over Loupe's 40M limit, under Pillow's threshold
    ],
    ids=["pillow-bomb", "over-loupe-limit"],
)
def test_decompression_bomb_is_refused_without_decoding_it_and_nothing_is_stored(
    station_client, nothing_stored, decoded_sizes, settings, size
):
    assert settings.LOUPE_MAX_IMAGE_PIXELS == 40_000_000
    bomb = zero_png(*size)
    assert len(bomb) < 1_000_000
    response = post(station_client, image=bomb)
    assert_refused(response, 413, "image_too_large", "pixels", field="image")
    assert decoded_sizes == []
    nothing_stored()


def test_image_over_a_configured_pixel_limit_is_refused_and_nothing_is_stored(
    station_client, nothing_stored, decoded_sizes, settings
):
    settings.LOUPE_MAX_IMAGE_PIXELS = 128 * 128 - 1
    response = post(station_client, image=image_bytes("PNG", size=(128, 128)))
    assert_refused(response, 413, "image_too_large", "the limit is 16383 pixels", field="image")
    assert decoded_sizes == []
    nothing_stored()


@pytest.mark.parametrize("fmt", ["GIF", "BMP"])
def test_unsupported_image_format_is_refused_and_nothing_is_stored(
    station_client, nothing_stored, fmt
):
    image = encode(Image.new("RGB", (64, 64), (90, 90, 90)), fmt)
    response = post(station_client, image=image, name=f"part.{fmt.lower()}")
    assert_refused(response, 415, "image_unsupported", f"format {fmt}", field="image")
    nothing_stored()


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("CMYK", "JPEG"), ("I;16", "PNG")],
    ids=["cmyk-jpeg", "16-bit-grayscale-png"],
)
def test_unsupported_image_mode_is_refused_and_nothing_is_stored(
    station_client, nothing_stored, mode, fmt
):
    image = encode(Image.new(mode, (64, 64)), fmt)
    response = post(station_client, image=image, name=f"part.{fmt.lower()}")
    assert_refused(response, 415, "image_unsupported", f"mode {mode}", field="image")
    nothing_stored()


# Authentication and the station -----------------------------------------------------------


def test_request_without_authorization_is_refused_and_nothing_is_stored(nothing_stored):
    response = post(api_client())
    assert_refused(response, 401, "not_authenticated", "station token is required")
    assert response["WWW-Authenticate"].startswith("Bearer")
    nothing_stored()


def test_request_with_a_wrong_token_is_refused_and_nothing_is_stored(
    station_and_token, nothing_stored
):
    response = post(api_client("Bearer lps_not-the-token"))
    assert_refused(response, 401, "authentication_failed", "token is not valid")
    assert response["WWW-Authenticate"].startswith("Bearer")
    nothing_stored()


@pytest.mark.parametrize("header", ["Token abc", "Basic dXNlcjpwYXNz", "Bearer", "Bearer   "])
def test_request_with_another_scheme_or_no_token_is_refused_and_nothing_is_stored(
    station_and_token, nothing_stored, header
):
    response = post(api_client(header))
    assert_refused(response, 401, "authentication_failed", "Authorization: Bearer <token>")
    assert response["WWW-Authenticate"].startswith("Bearer")
    nothing_stored()


def test_a_logged_in_browser_session_cannot_post_and_nothing_is_stored(
    django_user_model, nothing_stored
):
    client = api_client()
    client.force_login(django_user_model.objects.create_superuser("boss", password="x"))
    response = post(client)
    assert_refused(response, 401, "not_authenticated", "station token is required")
    assert response["WWW-Authenticate"].startswith("Bearer")
    nothing_stored()


def test_disabled_station_is_refused_and_nothing_is_stored(
    station_and_token, station_client, nothing_stored
):
    station, _ = station_and_token
    station.is_enabled = False
    station.save()
    response = post(station_client)
    assert_refused(response, 403, "permission_denied", "'cam-bad-input' is disabled")
    nothing_stored()


# external_id ------------------------------------------------------------------------------


@pytest.mark.parametrize("external_id", [None, "", "   "], ids=["absent", "empty", "blank"])
def test_missing_external_id_is_refused_and_nothing_is_stored(
    station_client, nothing_stored, external_id
):
    response = post(station_client, external_id=external_id)
    assert_refused(response, 400, "invalid_input", "external_id is required", field="external_id")
    nothing_stored()


def test_too_long_external_id_is_refused_and_nothing_is_stored(station_client, nothing_stored):
    response = post(station_client, external_id="A" * 129)
    assert_refused(
        response, 400, "invalid_input", "129 characters; the limit is 128", field="external_id"
    )
    nothing_stored()


@pytest.mark.parametrize("char", ["\x00", "\t", "\x1b"], ids=["nul", "tab", "escape"])
def test_external_id_with_a_control_character_is_refused_and_nothing_is_stored(
    station_client, nothing_stored, char
):
    response = post(station_client, external_id=f"SN{char}1")
    assert_refused(response, 400, "invalid_input", "control characters", field="external_id")
    nothing_stored()


@pytest.mark.parametrize("char", ["\x7f", "\x85"], ids=["del", "c1-next-line"])
def test_external_id_with_del_or_a_c1_control_is_refused_and_nothing_is_stored(
    station_client, nothing_stored, char
):
    response = post(station_client, external_id=f"SN{char}1")
    assert_refused(response, 400, "invalid_input", "control characters", field="external_id")
    nothing_stored()


# metadata ---------------------------------------------------------------------------------


def test_metadata_that_is_not_json_is_refused_and_nothing_is_stored(station_client, nothing_stored):
    response = post(station_client, metadata="{lot: L-42")
    assert_refused(response, 400, "invalid_input", "not valid JSON", field="metadata")
    nothing_stored()


@pytest.mark.parametrize("raw", ['["L-42"]', '"L-42"', "42", "null"])
def test_metadata_that_is_not_a_json_object_is_refused_and_nothing_is_stored(
    station_client, nothing_stored, raw
):
    response = post(station_client, metadata=raw)
    assert_refused(response, 400, "invalid_input", "must be a JSON object", field="metadata")
    nothing_stored()


@pytest.mark.parametrize("levels", [33, 300, 900, 2000])
def test_deeply_nested_metadata_is_refused_and_nothing_is_stored(
    station_client, nothing_stored, levels
):
    """900 levels of {"a": ...} (about 5 KB) once got an HTML 500 (RecursionError)."""
    raw = '{"a":' * levels + "1" + "}" * levels
    response = post(station_client, metadata=raw)
    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"] == "invalid_input"
    assert response.json()["field"] == "metadata"
    nothing_stored()


def test_metadata_32_levels_deep_is_accepted(station_client):
    raw = '{"a":' * 31 + '{"lot": "L-42"}' + "}" * 31
    assert post(station_client, metadata=raw).status_code == 201


def test_metadata_over_16_kb_is_refused_and_nothing_is_stored(station_client, nothing_stored):
    raw = '{"note": "' + "x" * (16 * 1024) + '"}'
    response = post(station_client, metadata=raw)
    assert_refused(response, 400, "invalid_input", "at most 16384 bytes", field="metadata")
    nothing_stored()


@pytest.mark.parametrize(
    "raw",
    [
        '{"a": NaN}',
        '{"a": Infinity}',
        '{"a": 1e999}',
        '{"a": "\\u0000"}',
        '{"a": "\\ud800"}',
        '{"a": ' + "[" * 5000 + "]" * 5000 + "}",
        '{"a": ' + "9" * 5000 + "}",
    ],
    ids=["nan", "infinity", "float-overflow", "nul-escape", "lone-surrogate", "deep", "huge-int"],
)
def test_metadata_json_that_postgresql_cannot_store_is_refused_and_nothing_is_stored(
    station_client, nothing_stored, raw
):
    assert len(raw.encode()) <= 16 * 1024
    response = post(station_client, image=image_bytes("PNG", seed=5), metadata=raw)
    assert_refused(response, 400, "invalid_input", "metadata", field="metadata")
    nothing_stored()


# The body ---------------------------------------------------------------------------------


def test_json_body_is_refused_as_unsupported_media_type_and_nothing_is_stored(
    station_client, nothing_stored
):
    response = station_client.post(URL, {"external_id": "SN-1", "image": "aGVsbG8="}, format="json")
    assert_refused(response, 415, "unsupported_media_type", "application/json")
    nothing_stored()
