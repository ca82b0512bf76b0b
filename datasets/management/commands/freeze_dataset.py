from django.core.management.base import BaseCommand

from datasets import services
from loupe.common.errors import LoupeError
from loupe.common.lookup import as_command_error


class Command(BaseCommand):
    help = (
        "Freeze the latest labels of the selected inspections into a dataset version and print "
        "its name. Freezing the same revisions again prints the existing version."
    )

    def add_arguments(self, parser):
        parser.add_argument("--line", action="append", default=[], help="repeat for more lines")
        parser.add_argument("--from", dest="date_from", help="received on or after, YYYY-MM-DD")
        parser.add_argument("--to", dest="date_to", help="received on or before, YYYY-MM-DD")
        parser.add_argument(
            "--source",
            action="append",
            default=[],
            help="label source (human, correction, model_accepted, review); repeat for more; "
            "leave review out to freeze without review decisions' labels",
        )
        parser.add_argument("--class", dest="classes", action="append", default=[])
        parser.add_argument("--name", default=None)

    def handle(self, *args, **opts):
        filters = {
            "lines": opts["line"],
            "date_from": opts["date_from"],
            "date_to": opts["date_to"],
            "sources": opts["source"],
            "classes": opts["classes"],
        }
        try:
            version, created = services.freeze_dataset(
                filters={key: value for key, value in filters.items() if value},
                name=opts["name"],
            )
        except LoupeError as exc:
            raise as_command_error(exc) from exc
        splits = ", ".join(
            f"{split} {counts['images']}" for split, counts in sorted(version.counts.items())
        )
        self.stderr.write(
            f"{'froze' if created else 'already frozen as'} {version.name}: "
            f"{version.item_count} images ({splits}); classes {', '.join(version.classes) or '-'}; "
            f"hash {version.version_hash}"
        )
        self.stdout.write(version.name)
