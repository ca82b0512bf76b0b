"""Every URL of Loupe, for every actor, on its own line and on another: the status declared in
tests/accounts/authorization_table.py.

The URL list comes from Django's resolver, so a new URL without a row fails here, and so does a
row whose URL is gone. Each request runs in a savepoint that is rolled back, so every one meets
the same objects (an item decided by one request is still open for the next).
"""

import logging
from dataclasses import dataclass
from functools import partial

import pytest
from django.conf import settings
from django.contrib import admin
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from tests.accounts import authorization_table as table
from tests.accounts.authorization_world import (
    APP_LIST,
    BODIES,
    LINE_IN_BODY,
    PREPARE,
    World,
    build_world,
    is_sided,
    request_for,
)

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def url_routes() -> list[str]:
    """Every URL pattern of loupe.urls and its includes, as one route string each."""
    routes = []

    def walk(resolver, prefix):
        for pattern in resolver.url_patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern, route)
            elif isinstance(pattern, URLPattern):
                routes.append(route)

    walk(get_resolver(), "")
    return routes


def declared_rows(route: str) -> dict | None:
    """The table's rows of a route ({method: expectations}), None when it has none."""
    if not route.startswith(table.ADMIN_PREFIX):
        return table.TABLE.get(route)
    rest = route.removeprefix(table.ADMIN_PREFIX)
    if APP_LIST.fullmatch(rest):
        return table.ADMIN_SITE[table.ADMIN_APP_LIST]
    if rest in table.ADMIN_SITE:
        return table.ADMIN_SITE[rest]
    parts = rest.split("/")
    model = "/".join(parts[:2])
    if len(parts) > 2 and model in table.ADMIN_MODELS:
        return table.admin_model_rows(model).get(rest)
    return None


def test_every_url_has_a_row_in_the_table():
    missing = [route for route in url_routes() if declared_rows(route) is None]
    assert not missing, (
        "URLs without a row in tests/accounts/authorization_table.py (declare who may reach "
        f"them): {missing}"
    )


def test_every_row_of_the_table_is_a_url():
    routes = set(url_routes())
    admin_models = [f"{m._meta.app_label}/{m._meta.model_name}" for m in admin.site._registry]
    declared = set(table.TABLE)
    for model in table.ADMIN_MODELS:
        declared |= {table.ADMIN_PREFIX + r for r in table.admin_model_rows(model)}
    admin_site = [r.removeprefix(table.ADMIN_PREFIX) for r in routes if r.startswith("admin/")]
    has_app_list = any(APP_LIST.fullmatch(r) for r in admin_site)
    for page in table.ADMIN_SITE:
        if not (page in admin_site or (page == table.ADMIN_APP_LIST and has_app_list)):
            declared.add(table.ADMIN_PREFIX + page)
    # and how a request is made, for a row that is gone
    declared |= {route for _, route in [*BODIES, *PREPARE, *LINE_IN_BODY]}
    stale = sorted(declared - routes)
    assert not stale, f"rows of the authorization table for URLs that no longer exist: {stale}"
    assert sorted(table.ADMIN_MODELS) == sorted(admin_models), (
        "every model in Django admin needs its line in ADMIN_MODELS, and only those"
    )


# --- asking --------------------------------------------------------------------------------


def _clients(world: World) -> dict:
    """actor -> a function giving its client, ready for one request. One client per actor (a
    client loads the whole middleware stack when made); a user's client gets its session
    cookie back before each request, so a logout in one (rolled back) request cannot touch
    the next."""
    anonymous = Client(raise_request_exception=False)
    station = Client(
        raise_request_exception=False, headers={"Authorization": f"Bearer {world.own.token}"}
    )
    makers = {
        "anonymous": lambda: _only_cookie(anonymous),
        "station": lambda: _only_cookie(station),
    }
    for actor, user in world.users.items():
        client = Client(raise_request_exception=False)
        client.force_login(user)
        session = client.cookies[settings.SESSION_COOKIE_NAME].value
        makers[actor] = lambda client=client, session=session: _only_cookie(client, session)
    return makers


def _only_cookie(client, session=None):
    client.cookies.clear()
    if session:
        client.cookies[settings.SESSION_COOKIE_NAME] = session
    return client


def _matches(expected, response) -> bool:
    if isinstance(expected, int):
        return response.status_code == expected
    if isinstance(expected, table.AnyOf):
        return response.status_code in expected.statuses
    location = response.get("Location", "")
    if expected.to is None:
        return response.status_code == 302 and not location.startswith(table.SIGN_IN.to)
    return response.status_code == 302 and location.startswith(expected.to)


def _shown(expected) -> str:
    if isinstance(expected, int):
        return str(expected)
    if isinstance(expected, table.AnyOf):
        return " or ".join(map(str, expected.statuses))
    return f"302 to {expected.to or 'a page that is not a login'}"


def _got(response) -> str:
    if response.status_code in (301, 302, 303, 307):
        return f"{response.status_code} to {response['Location']}"
    return str(response.status_code)


def ask(client, method: str, url: str, kwargs: dict, prepare=None) -> tuple:
    """One request in a savepoint rolled back afterwards: it changes nothing the next sees.
    Returns the response and its body."""
    with transaction.atomic():
        if prepare:
            prepare()
        response = getattr(client, method.lower())(url, secure=True, **kwargs)
        # a file is read to the end: the test client then closes it as a server would
        body = b"".join(response.streaming_content) if response.streaming else response.content
        transaction.set_rollback(True)
    return response, body


@dataclass
class Case:
    route: str
    method: str
    actor: str
    side: str
    expected: object
    url: str
    kwargs: dict
    prepare: object = None

    def __str__(self) -> str:
        return f"{self.method} {self.route} as {self.actor}, {self.side} line ({self.url})"


def cases(world: World):
    """Every (route, method) of the table, for every actor, on each line it names."""
    for route in url_routes():
        rows = declared_rows(route)
        if rows is None:
            continue  # reported by test_every_url_has_a_row_in_the_table
        for method, expectations in rows.items():
            assert method in METHODS and len(expectations) == len(table.ACTORS), route
            sided = is_sided(route, method)
            for actor, expected in zip(table.ACTORS, expectations, strict=True):
                assert sided or not isinstance(expected, table.Sides), (
                    f"{method} {route}: own and other line declared, but it names no line"
                )
                for side in ("own", "other") if sided else ("own",):
                    objects = getattr(world, side)
                    url, kwargs = request_for(route, method, objects, world, actor, side)
                    resolved = resolve(url.split("?")[0]).route
                    assert resolved.replace("^", "") == route.replace("^", ""), (
                        f"{url} asks {resolved}, not {route}"
                    )
                    prepare = PREPARE.get((method, route))
                    user = world.users.get(actor)
                    if prepare and user:
                        prepare = partial(prepare, objects, user)
                    yield Case(
                        route=route,
                        method=method,
                        actor=actor,
                        side=side,
                        expected=getattr(expected, side)
                        if isinstance(expected, table.Sides)
                        else expected,
                        url=url,
                        kwargs=kwargs,
                        prepare=prepare if user else None,
                    )


@pytest.mark.django_db
def test_each_actor_gets_the_declared_status_on_its_own_line_and_another(
    settings, caplog, tmp_path
):
    """Also: nothing a user (not an admin) is answered names the other line, so a list page
    that leaked another line's rows would fail here too."""
    # the world's imports and exports keep their files apart from the shared media folder,
    # which other tests check for files left behind
    settings.MEDIA_ROOT = tmp_path / "media"
    # the users' passwords are never typed here: a fast hasher keeps the setup short
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # hundreds of 403s and 404s are expected: Django's warning (with a traceback) for each
    # would only slow the run; a 500 is still logged
    caplog.set_level(logging.ERROR, logger="django.request")
    world = build_world()
    clients = _clients(world)
    other_line = world.other.line.name.encode()
    mismatches, leaks, asked = [], [], 0
    for case in cases(world):
        response, body = ask(
            clients[case.actor](), case.method, case.url, case.kwargs, case.prepare
        )
        asked += 1
        if not _matches(case.expected, response):
            mismatches.append(f"{case}: expected {_shown(case.expected)}, got {_got(response)}")
        # on the other line's objects a refusal may repeat what was asked (the line's name)
        if case.actor != "admin" and case.side == "own" and other_line in body:
            leaks.append(f"{case}: {_got(response)} names {world.other.line.name}")
    assert not mismatches + leaks, (
        f"{len(mismatches)} of {asked} answers differ from the table, {len(leaks)} show "
        "another line:\n" + "\n".join(mismatches + leaks)
    )
