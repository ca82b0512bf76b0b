"""The load generator: station threads posting images back to back over keep-alive HTTP."""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid

from .images import tagged_png


class Station(threading.Thread):
    """One camera station: posts images back to back on one keep-alive connection."""

    def __init__(self, index, token, port, pool, tag, start_at, end_at, peer=False) -> None:
        super().__init__(daemon=True)
        self.index, self.token, self.port, self.pool, self.tag = index, token, port, pool, tag
        self.start_at, self.end_at = start_at, end_at
        # the naive peer (peer_app.py): its own route, no token, a 200 with the probability
        self.peer = peer
        self.results: list[dict] = []

    def post(self, conn: http.client.HTTPConnection, number: int) -> dict:
        external_id = f"{self.tag}-s{self.index:02d}-{number:05d}"
        png = tagged_png(self.pool[(self.index * 7 + number) % len(self.pool)], external_id)
        boundary = uuid.uuid4().hex
        head = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="external_id"\r\n\r\n'
            f"{external_id}\r\n"
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="image"; filename="{external_id}.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        body = head + png + f"\r\n--{boundary}--\r\n".encode()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        if not self.peer:
            headers["Authorization"] = f"Bearer {self.token}"
        path = "/predict" if self.peer else "/api/v1/inspections/"
        wall_start, started = time.time(), time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        ended, wall_end = time.perf_counter(), time.time()
        result = {
            "start": started,
            "end": ended,
            "wall_start": wall_start,
            "wall_end": wall_end,
            "external_id": external_id,
            "station": self.index,
            "status": response.status,
            "error": None,
        }
        try:
            answer = json.loads(payload)
        except ValueError:
            answer = {}
        if self.peer:
            if response.status != 200 or "defect_probability" not in answer:
                result["error"] = f"HTTP {response.status}: {payload[:200]!r}"
            result["model_ms"] = None
            return result
        if response.status != 201:
            result["error"] = f"HTTP {response.status}: {payload[:200]!r}"
        elif (
            answer.get("decision") not in ("accept", "reject")
            or answer.get("decided_by") != "model"
        ):
            result["error"] = (
                f"decision {answer.get('decision')!r} by {answer.get('decided_by')!r}, "
                f"fail_safe_reason {answer.get('fail_safe_reason')!r}"
            )
        result["model_ms"] = answer.get("latency_ms")
        return result

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        while time.perf_counter() < self.start_at:
            time.sleep(0.001)
        number = 0
        while time.perf_counter() < self.end_at:
            try:
                self.results.append(self.post(conn, number))
            except (OSError, http.client.HTTPException) as exc:
                now = time.perf_counter()
                self.results.append(
                    {"start": now, "end": now, "status": None, "error": repr(exc), "model_ms": None}
                )
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            number += 1
        conn.close()


def drive(tokens, port, pool, stations: int, tag: str, seconds: float, peer=False) -> list[dict]:
    start_at = time.perf_counter() + 0.05
    threads = [
        Station(i, None if peer else tokens[i], port, pool, tag, start_at, start_at + seconds, peer)
        for i in range(stations)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [r | {"t0": start_at} for thread in threads for r in thread.results]
