import json

from django.core.management.base import BaseCommand, CommandError

from inspection.models import Line, Rollout, RolloutMode
from loupe.common.lookup import named
from monitoring.challenger_report import rollout_report
from monitoring.rollout_gate import breach, ready_to_advance


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
        report = rollout_report(rollout)
        if rollout.mode == RolloutMode.CANARY:
            ready, why = ready_to_advance(rollout_report(rollout, current_step_only=True))
            report["gate"] = {"breach": breach(report), "ready_to_advance": ready, "why": why}
        self.stdout.write(json.dumps(report, indent=2))
