from django.core.management.base import BaseCommand

from inspection import services
from inspection.models import Line
from loupe.common.errors import LoupeError
from loupe.common.lookup import as_command_error, named


class Command(BaseCommand):
    help = "Create a camera station on a line and print its token (shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("line")
        parser.add_argument("name")

    def handle(self, *args, **opts):
        line = named(Line.objects.all(), opts["line"], kind="line")
        try:
            station, token = services.create_station(line=line, name=opts["name"])
        except LoupeError as exc:
            raise as_command_error(exc) from exc
        self.stderr.write(f"station {station} created; its token (store it now, it is not kept):")
        self.stdout.write(token)
