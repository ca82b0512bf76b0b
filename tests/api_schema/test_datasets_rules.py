"""The freeze body's rules, as its schema states them: a misspelt key is refused, not ignored
(ignoring "filter" froze every line), and each refusal names its field in words."""

import pytest

from datasets.models import DatasetVersion

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("body", "field", "detail"),
    [
        ({"filter": {"lines": ["line-data"]}}, "filter", "filter: this field is not known here"),
        ({"filters": {"line": ["line-data"]}}, "filters.line", "not known here"),
        ({"filters": {"lines": [5]}}, "filters.lines.0", "Not a valid string."),
        ({"filters": {"date_from": "20261126"}}, "filters.date_from", "a date like 2026-11-26"),
        ({"filters": {"sources": ["robot"]}}, "filters.sources.0", "is not a valid choice"),
        ({"name": "   "}, "name", "not whitespace"),
        ({"name": "x" * 101}, "name", "no more than 100 characters"),
    ],
    ids=[
        "misspelt-filters",
        "misspelt-filter",
        "number",
        "compact-date",
        "source",
        "blank",
        "long",
    ],
)
def test_a_freeze_body_that_breaks_its_schema_is_refused_in_words(
    client, data_team_user, body, field, detail
):
    response = client.post(
        "/api/v1/datasets/",
        body,
        "application/json",
        secure=True,
        HTTP_AUTHORIZATION=data_team_user.auth["Authorization"],
    )
    assert response.status_code == 400, response.content
    answer = response.json()
    assert (answer["error"], answer["field"]) == ("invalid_input", field)
    assert answer["detail"].startswith(f"{field}: ") and detail in answer["detail"]
    assert DatasetVersion.objects.count() == 0
