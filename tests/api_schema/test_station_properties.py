"""Property-based tests of the station API (hypothesis): whatever a station sends, the answer
is a success or a JSON refusal with a message, never a 5xx, and a refused request stores
nothing (no inspection row, no image file).

Fields are fuzzed one part at a time around a request that is accepted, so each refusal is due
to the part that changed; the multipart shapes are built by hand, byte by byte.
"""

import io
import itertools
import json
import re
import struct
import zlib
from pathlib import Path

import pytest
from django.test import Client
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from inspection.api.serializers import EXTERNAL_ID_PATTERN, MAX_EXTERNAL_ID
from inspection.models import Inspection
from tests.helpers import image_bytes

URL = "/api/v1/inspections/"
SERIALS = itertools.count()  # a fresh external_id per example, so none is a retry
PNG = image_bytes("PNG")
JPEG = image_bytes("JPEG")
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    # one station for all examples; each example checks only what it changed
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
pytestmark = pytest.mark.django_db


@pytest.fixture
def station(station_auth, settings):
    client = Client(raise_request_exception=False)
    media = Path(settings.MEDIA_ROOT)

    def files() -> set[Path]:
        return {path for path in media.rglob("*") if path.is_file()}

    def send(*, body: bytes, content_type: str):
        """POST the body; check the answer's shape, and that a refusal stored nothing."""
        rows, before = Inspection.objects.count(), files()
        response = client.generic(
            "POST",
            URL,
            body,
            content_type=content_type,
            secure=True,
            HTTP_AUTHORIZATION=station_auth["Authorization"],
        )
        assert response.status_code < 500, response.content[:300]
        assert response["Content-Type"] == "application/json", response.content[:300]
        answer = response.json()
        if response.status_code >= 400:
            assert isinstance(answer["error"], str) and answer["error"]
            assert isinstance(answer["detail"], str) and answer["detail"]
            assert Inspection.objects.count() == rows
            assert files() == before
        else:
            assert response.status_code in (200, 201)
            assert Inspection.objects.filter(pk=answer["id"]).exists()
        return response.status_code, answer

    return send


# Multipart, by hand -----------------------------------------------------------------------

BOUNDARY = "loupe-property-boundary"


def part(name: str, content: bytes, *, filename: str | None = None, content_type=None) -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    head = f"Content-Disposition: {disposition}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return f"--{BOUNDARY}\r\n{head}\r\n".encode() + content + b"\r\n"


def multipart(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def submission(*, image=PNG, external_id="SN-1", metadata=None) -> bytes:
    parts = [part("image", image, filename="part.png", content_type="image/png")]
    parts.append(part("external_id", external_id.encode()))
    if metadata is not None:
        parts.append(part("metadata", metadata.encode()))
    return multipart(*parts)


# external_id ------------------------------------------------------------------------------


@PROPERTY
@example(external_id="SN-1\n")
@given(external_id=st.one_of(st.text(max_size=MAX_EXTERNAL_ID + 20), st.text("\t \u3000a\x85")))
def test_any_external_id_is_accepted_exactly_when_the_schema_allows_it(station, external_id):
    status, answer = station(body=submission(external_id=external_id), content_type=MULTIPART)
    allowed = (
        len(external_id) <= MAX_EXTERNAL_ID
        # fullmatch: the schema's pattern is ECMA-262's, where $ is the end of the text; Python's
        # re.search lets $ match before a final newline and took "a\n" for allowed
        and re.fullmatch(EXTERNAL_ID_PATTERN, external_id) is not None
    )
    assert (status in (200, 201)) is allowed, (status, answer)
    if allowed:
        assert answer["external_id"] == external_id.strip()
    else:
        assert (status, answer["field"]) == (400, "external_id")


# metadata ---------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@st.composite
def nested(draw) -> str:
    """An object nested 1 to 60 levels deep through objects and arrays, around a value."""
    text = json.dumps(draw(json_values))
    for _ in range(draw(st.integers(1, 60))):
        text = f'{{"a": {text}}}' if draw(st.booleans()) else f"[{text}]"
    return "{" + f'"n": {text}' + "}"


metadata_texts = st.one_of(
    st.builds(json.dumps, st.dictionaries(st.text(max_size=8), json_values, max_size=6)),
    st.builds(json.dumps, json_values),
    nested(),
    st.text(max_size=200),
    st.builds(
        lambda n, c: '{"note": "' + c * n + '"}',
        st.integers(16_000, 20_000),
        st.sampled_from("xé€"),
    ),
)


def same_json(a, b) -> bool:
    """Equal, numbers by value: jsonb keeps 5.27e16 as the integer 52727061813107810."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same_json, a, b))
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


@PROPERTY
@given(metadata=metadata_texts)
def test_any_metadata_gets_an_answer_or_a_json_refusal(station, metadata):
    external_id = f"SN-meta-{next(SERIALS)}"
    status, answer = station(
        body=submission(external_id=external_id, metadata=metadata), content_type=MULTIPART
    )
    if status == 201:
        stored = Inspection.objects.get(pk=answer["id"]).metadata
        assert same_json(stored, json.loads(metadata) if metadata else {})
    else:
        assert (status, answer["field"]) == (400, "metadata")


# Multipart shapes -------------------------------------------------------------------------

part_names = st.sampled_from(["image", "external_id", "metadata", "extra", "image[]", ""])
part_types = st.sampled_from([None, "image/png", "text/plain", "application/json", "x/y"])


@st.composite
def any_part(draw) -> bytes:
    as_file = draw(st.booleans())
    return part(
        draw(part_names),
        draw(st.sampled_from([PNG, b"", b"SN-2", b'{"a": 1}', b"\xff\xfe\x00"])),
        filename=draw(st.sampled_from(["p.png", "", "x"])) if as_file else None,
        content_type=draw(part_types),
    )


content_types = st.sampled_from(
    [
        MULTIPART,
        "multipart/form-data",  # no boundary
        "multipart/form-data; boundary=another",
        "application/x-www-form-urlencoded",
        "application/json",
        "text/plain",
        "",
    ]
)


@PROPERTY
@given(
    parts=st.lists(any_part(), max_size=6),
    content_type=content_types,
    cut=st.none() | st.integers(0, 400),
)
def test_any_multipart_shape_gets_an_answer_or_a_json_refusal(station, parts, content_type, cut):
    body = multipart(*parts)
    station(body=body if cut is None else body[:cut], content_type=content_type)


def test_a_repeated_part_is_refused_rather_than_one_of_them_picked(station):
    body = multipart(
        part("image", PNG, filename="p.png"),
        part("external_id", b"SN-1"),
        part("external_id", b"SN-2"),
    )
    status, answer = station(body=body, content_type=MULTIPART)
    assert (status, answer["field"]) == (400, "external_id")
    assert answer["detail"] == "external_id is sent 2 times; send it once"


def test_form_fields_over_djangos_limits_get_json_refusals(station, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100_000
    status, answer = station(
        body=submission(metadata='{"a": "' + "x" * 100_000 + '"}'), content_type=MULTIPART
    )
    assert (status, answer["error"]) == (413, "request_too_large")
    many = [part(f"f{n}", b"1") for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)]
    status, answer = station(body=submission() + b"".join(many), content_type=MULTIPART)
    assert (status, answer["error"]) == (400, "invalid_request")


# Image bytes ------------------------------------------------------------------------------


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels and holds a few bytes of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = zlib.compress(b"\x00" * 16)
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", len(idat)) + b"IDAT" + idat
        + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
    )  # fmt: skip


def encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (90, 120, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


OTHER_FORMATS = [encoded(fmt) for fmt in ("GIF", "BMP", "TIFF", "WEBP", "ICO", "PPM")]


@st.composite
def flipped(draw, data: bytes) -> bytes:
    at = draw(st.integers(0, len(data) - 1))
    return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]


image_payloads = st.one_of(
    st.sampled_from([PNG, JPEG]).flatmap(lambda d: st.integers(0, len(d)).map(lambda n: d[:n])),
    st.binary(max_size=2000),
    st.builds(png_header, st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1)),
    st.sampled_from(OTHER_FORMATS),
    flipped(PNG),
    flipped(JPEG),
)


@PROPERTY
@given(image=image_payloads)
def test_any_image_bytes_get_an_answer_or_a_json_refusal(station, image):
    external_id = f"SN-image-{next(SERIALS)}"
    status, answer = station(
        body=submission(image=image, external_id=external_id), content_type=MULTIPART
    )
    assert status in (201, 400, 413, 415), answer
    if status >= 400:
        assert answer["field"] == "image"


# Reading one ------------------------------------------------------------------------------


@settings(PROPERTY, max_examples=100)
@given(key=st.one_of(st.integers(), st.text(max_size=30)))
def test_any_inspection_id_gets_an_answer_or_a_json_404(station_auth, key):
    from urllib.parse import quote

    response = Client().get(
        f"{URL}{quote(str(key), safe='')}/",
        secure=True,
        HTTP_AUTHORIZATION=station_auth["Authorization"],
    )
    assert response.status_code in (200, 404), response.content[:300]
    assert response.json()["error" if response.status_code == 404 else "id"]
