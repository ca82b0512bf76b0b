import json
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from monitoring import aggregation


def _moment(text: str) -> datetime:
    """An ISO date or time (UTC unless it names its zone), or a span back from now: 30d, 12h."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if text[-1:] in units and text[:-1].isdigit():
        return timezone.now() - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"not a time or a span like 30d: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Recompute the monitoring buckets of every line from the inspection tables, from "
        "--since to --until (default now). Safe to repeat; the periodic job does the last minutes."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", required=True, help="ISO time, or back from now: 30d, 6h")
        parser.add_argument("--until", help="ISO time (default: now)")

    def handle(self, *args, since, until=None, **options):
        start = _moment(since)
        end = _moment(until) if until else timezone.now()
        if start >= end:
            raise CommandError("--since must be before --until")
        result = aggregation.aggregate_range(since=start, until=end)
        self.stdout.write(json.dumps(result.as_dict()))
