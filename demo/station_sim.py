"""A simulated camera station: posts a generated product image about once a second, a few of
them defective, to the station API over HTTP with the station's token, as a real station
would. scripts/demo.sh runs it beside the demo server and stops it with the server, so the
demo line's pages move while someone looks.

    python -m demo.station_sim http://127.0.0.1:8000 --token-file var/demo-station-token \
        --answers var/demo-station.jsonl

Each answer is printed, and written as one JSON line to --answers (scripts/demo_check.py reads
them). Plain Python, no Django: it talks to Loupe only through HTTP. It waits --wait-s for the
server to come up, and stops by itself once the server has stayed unreachable for --give-up-s.
"""

import argparse
import io
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ml.engine.generator import SurfaceConfig, render_surface

# what the station answers when Loupe cannot be reached: no status, no body
UNREACHABLE = 0
DEFAULT_DEFECT_RATE = 0.1


@dataclass(frozen=True)
class Product:
    external_id: str
    png: bytes
    defect_classes: tuple[str, ...]


def products(*, seed: int, defect_rate: float, prefix: str) -> Iterator[Product]:
    """Generated product images, each from (seed, its number): the training images' surfaces
    and defect types, with `defect_rate` of them defective."""
    config = replace(SurfaceConfig(), defect_rate=defect_rate)
    number = 0
    while True:
        number += 1
        image, regions = render_surface(np.random.default_rng([seed, number]), config)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        yield Product(
            external_id=f"{prefix}-{number:06d}",
            png=buffer.getvalue(),
            defect_classes=tuple(sorted({region.label for region in regions})),
        )


def multipart(fields: dict[str, str], *, file_field: str, file_name: str, data: bytes):
    """A multipart/form-data body and its content type."""
    boundary = uuid.uuid4().hex
    body = io.BytesIO()
    for name, value in fields.items():
        body.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    body.write(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
        f'filename="{file_name}"\r\nContent-Type: image/png\r\n\r\n'.encode()
    )
    body.write(data + f"\r\n--{boundary}--\r\n".encode())
    return body.getvalue(), f"multipart/form-data; boundary={boundary}"


# proxies from the environment never apply: the server is the one this machine runs
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def post_product(base_url: str, token: str, product: Product, timeout_s: float):
    """POST one image; returns (HTTP status, JSON answer), (UNREACHABLE, {}) when no answer."""
    body, content_type = multipart(
        {"external_id": product.external_id, "metadata": json.dumps({"simulated": True})},
        file_field="image",
        file_name=f"{product.external_id}.png",
        data=product.png,
    )
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}/api/v1/inspections/",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )
    try:
        with _opener.open(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, {"detail": text[:200].decode(errors="replace")}
    except (OSError, urllib.error.URLError):
        return UNREACHABLE, {}


def describe(product: Product, status: int, answer: dict) -> str:
    truth = ", ".join(product.defect_classes) or "no defect"
    if status == UNREACHABLE:
        return f"{product.external_id} ({truth}): server unreachable"
    if status not in (200, 201):
        return f"{product.external_id} ({truth}): {status} {answer}"
    who = answer.get("decided_by") or "a person (review)"
    probability = answer.get("defect_probability")
    shown = "" if probability is None else f", p={probability:.3f}"
    return f"{product.external_id} ({truth}): {answer.get('decision')} by {who}{shown}"


def run(
    *,
    base_url: str,
    token: str,
    interval_s: float = 1.0,
    defect_rate: float = DEFAULT_DEFECT_RATE,
    seed: int | None = None,
    count: int = 0,
    wait_s: float = 120.0,
    give_up_s: float = 60.0,
    timeout_s: float = 30.0,
    answers: Path | None = None,
    out: Callable[[str], None] = print,
) -> int:
    """Post `count` images (0: until stopped), one per `interval_s`; returns how many got an
    answer. Returns early when the server was never reachable within `wait_s`, or stays
    unreachable for `give_up_s` after it was; a refused post (4xx, 5xx) is printed and the
    station carries on, as a real one would."""
    seed = int(time.time()) if seed is None else seed
    # a restarted station posts new serial numbers: the same one with another image is a 409
    prefix = f"SIM-{seed}"
    answered = 0
    started = last_answer = time.monotonic()
    next_at = started
    log = answers.open("a", buffering=1) if answers else None
    try:
        for sent, product in enumerate(
            products(seed=seed, defect_rate=defect_rate, prefix=prefix), 1
        ):
            status, answer = post_product(base_url, token, product, timeout_s)
            now = time.monotonic()
            out(describe(product, status, answer))
            if status != UNREACHABLE:
                last_answer = now
                answered += 1
            elif now - last_answer > (give_up_s if answered else wait_s):
                out(f"no answer from {base_url} for {now - last_answer:.0f}s: stopping")
                break
            if log is not None:
                record = {"external_id": product.external_id, "status": status}
                record.update(truth=list(product.defect_classes), answer=answer)
                log.write(json.dumps(record) + "\n")
            if count and sent >= count:
                break
            # a steady pace, without a burst to catch up after a slow answer
            next_at = max(next_at + interval_s, now)
            time.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        if log is not None:
            log.close()
    return answered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url", help="Loupe's address, e.g. http://127.0.0.1:8000")
    parser.add_argument("--token-file", type=Path, required=True, help="the station's token")
    parser.add_argument("--answers", type=Path, help="append each answer here as a JSON line")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between posts")
    parser.add_argument("--defect-rate", type=float, default=DEFAULT_DEFECT_RATE)
    parser.add_argument("--seed", type=int, help="default: the time, new images each start")
    parser.add_argument("--count", type=int, default=0, help="stop after this many; 0: never")
    parser.add_argument("--wait-s", type=float, default=120.0)
    parser.add_argument("--give-up-s", type=float, default=60.0)
    opts = parser.parse_args(argv)
    if opts.interval <= 0 or not 0.0 <= opts.defect_rate <= 1.0 or opts.count < 0:
        parser.error("--interval must be positive, --defect-rate within 0..1, --count >= 0")
    try:
        answered = run(
            base_url=opts.base_url,
            token=opts.token_file.read_text().strip(),
            interval_s=opts.interval,
            defect_rate=opts.defect_rate,
            seed=opts.seed,
            count=opts.count,
            wait_s=opts.wait_s,
            give_up_s=opts.give_up_s,
            answers=opts.answers,
            out=lambda text: print(text, flush=True),
        )
    except KeyboardInterrupt:
        return 0
    return 0 if answered else 1


if __name__ == "__main__":
    sys.exit(main())
