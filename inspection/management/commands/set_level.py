from django.core.management.base import BaseCommand

from inspection import services
from inspection.models import AutomationLevel, Line
from loupe.common.lookup import named


class Command(BaseCommand):
    help = "Set a line's automation level (applies to images received from now on)."

    def add_arguments(self, parser):
        parser.add_argument("line")
        parser.add_argument("level", choices=AutomationLevel.values)
        parser.add_argument("--reason", default="")

    def handle(self, *args, **opts):
        line = named(Line.objects.all(), opts["line"], kind="line")
        old = line.automation_level
        line = services.set_line_level(
            line=line, level=opts["level"], changed_by="cli", reason=opts["reason"]
        )
        self.stdout.write(f"line {line.name}: {old} -> {line.automation_level}")
