"""Stations posting continuously, as camera stations do, and what each attempt got back.

Each item has its own external_id. A station retries the same external_id after a
connection error (at once) and after a 503 (after its Retry-After), until it has an answer:
that is what makes an upload safe to repeat, and what the fault tests hold Loupe to.
"""

from __future__ import annotations

import http.client
import io
import threading
import time
import uuid
from dataclasses import dataclass, field

import requests
from PIL import Image
from PIL.PngImagePlugin import PngInfo

# The run: this many stations posting back to back at a fully automated line with this budget
STATIONS = 3
BUDGET_MS = 3000


def product_images(count: int = 8) -> list[Image.Image]:
    import numpy as np

    from ml.engine.generator import SurfaceConfig, render_surface

    return [
        render_surface(np.random.default_rng([77, index]), SurfaceConfig())[0]
        for index in range(count)
    ]


def png_bytes(image: Image.Image, tag: str) -> bytes:
    """The image with its external_id in a text chunk, so every post is new content."""
    info = PngInfo()
    info.add_text("external_id", tag)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


@dataclass
class Attempt:
    external_id: str
    started: float  # time.monotonic()
    ended: float
    kind: str  # answer, connection_error, unavailable, timeout, other
    status: int | None = None
    content_type: str = ""
    retry_after: str | None = None
    answer: dict = field(default_factory=dict)
    body: str = ""

    @property
    def seconds(self) -> float:
        return self.ended - self.started


class Fleet:
    """Station threads posting back to back until stopped; every attempt is recorded."""

    def __init__(self, url: str, tokens: list[str], *, timeout_s: float) -> None:
        self.url, self.tokens, self.timeout_s = url, tokens, timeout_s
        self.images = product_images()
        self.attempts: list[Attempt] = []
        self.sent: list[str] = []
        self.in_flight = 0
        self.slow_client_port = 0
        self._lock = threading.Lock()
        self._stop_new = threading.Event()
        self._give_up_at = float("inf")
        self._threads = [
            threading.Thread(target=self._station, args=(i,), daemon=True)
            for i in range(len(tokens))
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, *, drain_s: float) -> None:
        """Start no new item; keep retrying the unanswered ones for up to drain_s."""
        self._give_up_at = time.monotonic() + drain_s
        self._stop_new.set()
        for thread in self._threads:
            thread.join(timeout=drain_s + self.timeout_s + 5)

    def _station(self, index: int) -> None:
        session = requests.Session()
        number = 0
        while not self._stop_new.is_set():
            external_id = f"s{index}-{number:05d}"
            png = png_bytes(self.images[(index + number) % len(self.images)], external_id)
            with self._lock:
                self.sent.append(external_id)
            self.post_until_answered(session, index, external_id, png)
            number += 1

    def post_until_answered(self, session, index: int, external_id: str, png: bytes) -> None:
        while time.monotonic() < self._give_up_at:
            attempt = self.post_once(session, index, external_id, png)
            if attempt.kind == "answer" or attempt.kind == "other":
                return
            if attempt.kind == "unavailable":
                time.sleep(min(float(attempt.retry_after or 1), 5.0))
            elif attempt.kind == "connection_error":
                session.close()  # a fresh connection, as a station's HTTP client would
                time.sleep(0.1)

    def post_once(self, session, index: int, external_id: str, png: bytes) -> Attempt:
        with self._lock:
            self.in_flight += 1
        started = time.monotonic()
        try:
            response = session.post(
                f"{self.url}/api/v1/inspections/",
                headers={"Authorization": f"Bearer {self.tokens[index]}"},
                files={"image": (f"{external_id}.png", png, "image/png")},
                data={"external_id": external_id},
                timeout=(5, self.timeout_s),
            )
        except requests.exceptions.Timeout:
            attempt = Attempt(external_id, started, time.monotonic(), "timeout")
        except requests.exceptions.ConnectionError:
            attempt = Attempt(external_id, started, time.monotonic(), "connection_error")
        else:
            attempt = self._read(external_id, started, response)
        with self._lock:
            self.in_flight -= 1
            self.attempts.append(attempt)
        return attempt

    def post_slowly(self, index: int, external_id: str, png: bytes, uploading) -> None:
        """Upload one item over about two seconds, setting `uploading` (a threading.Event)
        once part of it is sent, with the client's port in `self.slow_client_port`; then, as
        any station, retry until answered."""
        with self._lock:
            self.sent.append(external_id)
        boundary = uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="external_id"\r\n\r\n'
                f"{external_id}\r\n--{boundary}\r\n"
                f'Content-Disposition: form-data; name="image"; filename="{external_id}.png"\r\n'
                "Content-Type: image/png\r\n\r\n"
            ).encode()
            + png
            + f"\r\n--{boundary}--\r\n".encode()
        )
        port = int(self.url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=self.timeout_s)
        started = time.monotonic()
        try:
            conn.putrequest("POST", "/api/v1/inspections/")
            conn.putheader("Authorization", f"Bearer {self.tokens[index]}")
            conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders()
            self.slow_client_port = conn.sock.getsockname()[1]
            step = max(1, len(body) // 40)
            for offset in range(0, len(body), step):
                conn.send(body[offset : offset + step])
                uploading.set()
                time.sleep(0.05)
            kind = "answer" if conn.getresponse().status in (200, 201) else "other"
        except (OSError, http.client.HTTPException):
            kind = "connection_error"
        finally:
            conn.close()
        with self._lock:
            self.attempts.append(Attempt(external_id, started, time.monotonic(), kind))
        self.post_until_answered(requests.Session(), index, external_id, png)

    @staticmethod
    def _read(external_id: str, started: float, response) -> Attempt:
        content_type = response.headers.get("Content-Type", "")
        try:
            body = response.json() if content_type.startswith("application/json") else {}
        except ValueError:
            body = {}
        if response.status_code in (200, 201):
            kind = "answer"
        elif response.status_code == 503 and body and response.headers.get("Retry-After"):
            kind = "unavailable"
        else:
            kind = "other"
        return Attempt(
            external_id=external_id,
            started=started,
            ended=time.monotonic(),
            kind=kind,
            status=response.status_code,
            content_type=content_type,
            retry_after=response.headers.get("Retry-After"),
            answer=body if kind == "answer" else {},
            body="" if kind == "answer" else response.text[:300],
        )

    def answers(self) -> dict[str, dict]:
        """The answer each acknowledged external_id got (the last, if a retry answered again)."""
        with self._lock:
            return {a.external_id: a.answer for a in self.attempts if a.kind == "answer"}

    def wait_for_model(self, count: int, *, timeout: float) -> None:
        """Wait until the model decided `count` items: the worker has loaded it."""
        deadline = time.monotonic() + timeout
        while sum(a.get("decided_by") == "model" for a in self.answers().values()) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the model decided fewer than {count} items in {timeout:.0f}s")
            time.sleep(0.05)


def big_png(side: int = 4000) -> bytes:
    """Slow to decode, so a worker can be killed while it predicts on this item."""
    image = Image.linear_gradient("L").resize((side, side)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
