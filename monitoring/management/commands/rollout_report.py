import json

from django.core.management.base import BaseCommand, CommandError

from inspection.models import Line, Rollout
from loupe.common.lookup import named
from monitoring.challenger_report import rollout_report


class Command(BaseCommand):
    help = (
        "The side-by-side report of a line's latest rollout (active against challenger), as JSON."
    )

    def add_arguments(self, parser):
        parser.add_argument("line")

    def handle(self, *args, **opts):
        line = named(Line.objects.all(), opts["line"], kind="line")
        rollout = Rollout.objects.filter(line=line).order_by("-started_at", "-pk").first()
        if rollout is None:
            raise CommandError(f"line {line.name} has had no rollout")
        self.stdout.write(json.dumps(rollout_report(rollout), indent=2))
