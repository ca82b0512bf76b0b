from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from datasets import importers
from datasets.models import ImportFormat
from inspection.models import Line
from loupe.common.lookup import named


class Command(BaseCommand):
    help = (
        "Import a COCO or ImageFolder zip as labeled inspections of LINE, all or nothing. "
        "The labels are recorded as USER's; every bad file is listed with its reason."
    )

    def add_arguments(self, parser):
        parser.add_argument("archive", type=Path)
        parser.add_argument("--line", required=True)
        parser.add_argument("--format", choices=ImportFormat.values, required=True)
        parser.add_argument("--user", required=True, help="who vouches for the labels")

    def handle(self, *args, **opts):
        line = named(Line.objects.all(), opts["line"], kind="line")
        user = get_user_model().objects.filter(username=opts["user"]).first()
        if user is None:
            raise CommandError(f"no user named {opts['user']!r}")
        if not opts["archive"].is_file():
            raise CommandError(f"{opts['archive']} is not a file")
        try:
            result = importers.import_archive(
                path=opts["archive"],
                line=line,
                fmt=opts["format"],
                user=user,
                archive_name=opts["archive"].name,
            )
        except importers.ImportRefused as refused:
            for problem in refused.problems:
                self.stderr.write(f"{problem.file}: {problem.reason}")
            raise CommandError(refused.message) from refused
        for item in result.skipped:
            self.stderr.write(f"left out {item.file}: {item.reason}")
        self.stdout.write(f"{result.created} labeled inspections created in line {line.name}")
