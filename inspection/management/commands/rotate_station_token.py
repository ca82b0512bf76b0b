from django.core.management.base import BaseCommand

from inspection import services
from inspection.models import Line
from loupe.common.lookup import named


class Command(BaseCommand):
    help = (
        "Give a station a new token and print it (shown only this once); the old token stops "
        "working at once. Written to the line's audit log, like the admin action."
    )

    def add_arguments(self, parser):
        parser.add_argument("line")
        parser.add_argument("station")
        parser.add_argument("--reason", default="", help="why, for the line's audit log")

    def handle(self, *args, **opts):
        line = named(Line.objects.all(), opts["line"], kind="line")
        station = named(line.stations.all(), opts["station"], kind="station")
        token = services.rotate_station_token(
            station=station, changed_by="cli", reason=opts["reason"]
        )
        self.stderr.write(f"station {station}: new token (store it now, it is not kept):")
        self.stdout.write(token)
