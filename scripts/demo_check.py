"""Checks a running demo as its users would: the station posts an image and gets an answer;
each demo user logs in, reaches their start page and finds real content there (the data team
labeled items and a dataset version, the supervisor the demo line's model trained from that
version, the inspector a review queue); and the simulated station's trickle got decisions,
which the line's page counts. Exit status 0 when all of it works.

Usage: demo_check.py BASE_URL TOKEN_FILE IMAGE --answers FILE (scripts/demo.sh --check runs
it; FILE is where demo/station_sim.py writes the answers it gets).
"""

import argparse
import html
import json
import re
import time
import uuid
from pathlib import Path

import requests

# the logins and names setup_demo creates (demo/management/commands/setup_demo.py)
USERS = [
    ("inspector", "loupe-review-shift", "/review/"),
    ("supervisor", "loupe-line-lead", "/lines/"),
    ("data", "loupe-data-team", "/data/"),
    ("admin", "loupe-admin", "/lines/"),
]
DEMO_LINE = "demo-line"
SHADOW_LINE = "shadow-line"
# how many of the simulated station's posts must have been answered, and how long to wait
TRICKLE_POSTS = 5
TRICKLE_WAIT_S = 120


class CheckFailed(SystemExit):
    pass


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
        raise CheckFailed(f"station POST: {answer.status_code} {answer.text[:300]}")
    body = answer.json()
    if body["decision"] not in ("accept", "reject", "review"):
        raise CheckFailed(f"station POST: no decision in {body}")
    outcome = f"{body['decision']} by {body['decided_by']}" if body["decided_by"] else "to review"
    return f"station: 201, {outcome}"


def login(base: str, username: str, password: str, start: str) -> requests.Session:
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
        raise CheckFailed(f"{username}: landed on {landed} ({answer.status_code}), not {start}")
    print(f"{username}: logged in, {landed} answered 200")
    session.base = base
    return session


def page(session: requests.Session, path: str) -> str:
    answer = session.get(f"{session.base}{path}", timeout=30)
    if answer.status_code != 200:
        raise CheckFailed(f"{path}: {answer.status_code}")
    return answer.text


def found(pattern: str, text: str, what: str) -> re.Match:
    match = re.search(pattern, text, re.S)
    if match is None:
        raise CheckFailed(f"not found: {what}")
    return match


def check_data_team(session) -> list[str]:
    """Labeled items on /data/ and at least one dataset version; returns the versions' names."""
    labeled = int(found(r"(\d+) labeled inspections?", page(session, "/data/"), "a count").group(1))
    if labeled <= 0:
        raise CheckFailed("data: /data/ shows no labeled inspection")
    versions = [
        html.unescape(name)
        for name in re.findall(r'href="/datasets/\d+/">([^<]+)</a>', page(session, "/datasets/"))
    ]
    if not versions:
        raise CheckFailed("data: /datasets/ lists no dataset version")
    print(f"data: {labeled} labeled inspections on /data/, dataset versions {versions}")
    return versions


def line_row(session, name: str) -> dict:
    """The line's row on /lines/: its page's path and today's counts."""
    row = found(rf'<tr data-line="{re.escape(name)}">(.*?)</tr>', page(session, "/lines/"), name)
    counts = re.findall(r'data-count="(\w+)">\s*(\d+)', row.group(1))
    path = found(r'href="(/lines/\d+/)"', row.group(1), f"the link to {name}").group(1)
    return {"path": path, **{key: int(value) for key, value in counts}}


def check_supervisor(session, versions: list[str]) -> dict:
    """The demo line's model page names a dataset version the data team sees."""
    row = line_row(session, DEMO_LINE)
    line_pk = row["path"].strip("/").split("/")[-1]
    registry = page(session, f"/models/?line={line_pk}")
    model = found(r'id="active-model"><a href="(/models/\d+/)">([^<]+)</a>', registry, "a model")
    lineage = page(session, model.group(1))
    named = found(r"<dt>Dataset version</dt><dd>([^<]*?)\s*<", lineage, "the dataset version")
    dataset = html.unescape(named.group(1)).strip()
    if dataset not in versions:
        raise CheckFailed(f"supervisor: {model.group(2)} names {dataset!r}, not a version")
    print(f"supervisor: {DEMO_LINE} serves {model.group(2)}, trained on dataset version {dataset}")
    return row


def check_inspector(session) -> None:
    waiting = int(found(r'id="open-count">(\d+)<', page(session, "/review/"), "open").group(1))
    if waiting <= 0:
        raise CheckFailed("inspector: the review queue is empty")
    print(f"inspector: {waiting} items waiting in the review queue")


def check_admin(session) -> None:
    for name in (DEMO_LINE, SHADOW_LINE):
        line_row(session, name)
    page(session, "/admin/")
    print(f"admin: {DEMO_LINE} and {SHADOW_LINE} on /lines/, /admin/ answered 200")


def read_answers(answers: Path) -> list[dict]:
    lines = answers.read_text().splitlines() if answers.exists() else []
    return [json.loads(line) for line in lines if line.strip()]


def trickle_answers(answers: Path, at_least: int) -> list[dict]:
    """The simulated station's answered posts, once `at_least` of them are in."""
    deadline = time.monotonic() + TRICKLE_WAIT_S
    while True:
        posted = read_answers(answers)
        answered = [p for p in posted if p["status"] == 201]
        if len(answered) >= at_least:
            return answered
        if time.monotonic() > deadline:
            raise CheckFailed(
                f"station simulator: {len(answered)} of {len(posted)} posts answered 201 after "
                f"{TRICKLE_WAIT_S}s: {posted[-3:]}"
            )
        time.sleep(1)


def check_trickle(base: str, token: str, answers: Path, before: dict, supervisor) -> None:
    """Every answered post has a decision that the station reads back, the model decided some
    of them, and the demo line's page counts those posted since `before` was read."""
    answered = trickle_answers(answers, max(TRICKLE_POSTS, before["answered"] + 3))
    by_model = 0
    for post in answered:
        decision = post["answer"].get("decision")
        if decision not in ("accept", "reject", "review"):
            raise CheckFailed(f"station simulator: no decision for {post}")
        by_model += post["answer"].get("decided_by") == "model"
        again = requests.get(
            f"{base}/api/v1/inspections/{post['answer']['id']}/",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        if again.status_code != 200 or again.json()["external_id"] != post["external_id"]:
            raise CheckFailed(f"station GET of {post['external_id']}: {again.status_code}")
    if by_model == 0:
        raise CheckFailed(f"station simulator: the model decided none of {len(answered)} posts")
    after = line_row(supervisor, DEMO_LINE)
    if after["inspected"] <= before["inspected"]:
        raise CheckFailed(f"{DEMO_LINE}: inspected {before['inspected']} -> {after['inspected']}")
    print(
        f"station simulator: {len(answered)} posts answered, {by_model} decided by the model; "
        f"{DEMO_LINE} inspected today {before['inspected']} -> {after['inspected']}, "
        f"decided by model {after['decided_by_model']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("token_file", type=Path)
    parser.add_argument("image", type=Path)
    parser.add_argument("--answers", type=Path, required=True)
    opts = parser.parse_args()
    base, token = opts.base_url.rstrip("/"), opts.token_file.read_text().strip()
    print(check_station(base, token, opts.image))
    sessions = {name: login(base, name, password, start) for name, password, start in USERS}
    versions = check_data_team(sessions["data"])
    answered = sum(p["status"] == 201 for p in read_answers(opts.answers))
    before = {**check_supervisor(sessions["supervisor"], versions), "answered": answered}
    check_inspector(sessions["inspector"])
    check_admin(sessions["admin"])
    check_trickle(base, token, opts.answers, before, sessions["supervisor"])
    print("demo check passed")


if __name__ == "__main__":
    main()
