from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from datasets import exporters
from datasets.models import DatasetVersion, ExportFormat


class Command(BaseCommand):
    help = (
        "Write a dataset version as a zip (COCO, YOLO, ImageFolder or CSV manifest), here and "
        "now, without a worker. The file appears complete or not at all."
    )

    def add_arguments(self, parser):
        parser.add_argument("version", help="the version's name")
        parser.add_argument("--format", choices=ExportFormat.values, required=True)
        parser.add_argument("--out", type=Path, required=True, help="the .zip to write")

    def handle(self, *args, **opts):
        version = DatasetVersion.objects.filter(name=opts["version"]).first()
        if version is None:
            raise CommandError(f"no dataset version named {opts['version']!r}")
        shown = [-1]

        def progress(done: int, total: int) -> None:
            tenth = done * 10 // max(total, 1)
            if tenth != shown[0]:
                shown[0] = tenth
                self.stderr.write(f"{done} of {total} images")

        try:
            size = exporters.write_export(
                version=version, fmt=opts["format"], dest=opts["out"], progress=progress
            )
        except (exporters.ExportError, OSError) as exc:
            raise CommandError(f"export failed, nothing written: {exc}") from exc
        self.stdout.write(f"{opts['out']} ({size} bytes)")
