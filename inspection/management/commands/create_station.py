from django.core.management.base import BaseCommand

from inspection import services
from inspection.errors import LoupeError
from inspection.management.commands._lookup import as_command_error, line_named


class Command(BaseCommand):
    help = "Create a camera station on a line and print its token (shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("line")
        parser.add_argument("name")

    def handle(self, *args, **opts):
        line = line_named(opts["line"])
        try:
            station, token = services.create_station(line=line, name=opts["name"])
        except LoupeError as exc:
            raise as_command_error(exc) from exc
        self.stderr.write(f"station {station} created; its token (store it now, it is not kept):")
        self.stdout.write(token)
