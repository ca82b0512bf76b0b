"""Checks a running demo as its users would: the station posts an image and gets an answer,
and each demo user logs in and reaches their start page. Exit status 0 when all of it works.

Usage: demo_check.py BASE_URL TOKEN_FILE IMAGE (scripts/demo.sh --check runs it).
"""

import sys
import uuid
from pathlib import Path

import requests

# the logins setup_demo creates (demo/management/commands/setup_demo.py DEMO_USERS)
USERS = [
    ("inspector", "loupe-review-shift", "/review/"),
    ("supervisor", "loupe-line-lead", "/lines/"),
    ("data", "loupe-data-team", "/data/"),
    ("admin", "loupe-admin", "/lines/"),
]


def check_station(base: str, token: str, image: Path) -> str:
    with image.open("rb") as handle:
        answer = requests.post(
            f"{base}/api/v1/inspections/",
            headers={"Authorization": f"Bearer {token}"},
            data={"external_id": f"demo-check-{uuid.uuid4().hex[:8]}"},
            files={"image": (image.name, handle, "image/png")},
            timeout=30,
        )
    if answer.status_code != 201:
        raise SystemExit(f"station POST: {answer.status_code} {answer.text[:300]}")
    body = answer.json()
    if body["decision"] not in ("accept", "reject", "review"):
        raise SystemExit(f"station POST: no decision in {body}")
    outcome = f"{body['decision']} by {body['decided_by']}" if body["decided_by"] else "to review"
    return f"station: 201, {outcome}"


def check_login(base: str, username: str, password: str, start: str) -> str:
    session = requests.Session()
    session.get(f"{base}/login/", timeout=30).raise_for_status()
    answer = session.post(
        f"{base}/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": f"{base}/login/"},
        timeout=30,
    )
    landed = answer.url.removeprefix(base)
    if answer.status_code != 200 or not landed.startswith(start):
        raise SystemExit(f"{username}: landed on {landed} ({answer.status_code}), not {start}")
    return f"{username}: logged in, {landed} answered 200"


def main() -> None:
    base, token_file, image = sys.argv[1].rstrip("/"), Path(sys.argv[2]), Path(sys.argv[3])
    print(check_station(base, token_file.read_text().strip(), image))
    for username, password, start in USERS:
        print(check_login(base, username, password, start))
    print("demo check passed")


if __name__ == "__main__":
    main()
