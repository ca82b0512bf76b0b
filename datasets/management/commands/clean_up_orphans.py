from django.core.management.base import BaseCommand

from datasets import services


class Command(BaseCommand):
    help = (
        "Fail exports and imports whose worker stopped (no progress for 10 minutes) and remove "
        "the uploads and half-written zips they left. Workers do this after each export; run "
        "it from cron too."
    )

    def handle(self, *args, **opts):
        cleaned = services.clean_up_orphans()
        self.stdout.write(
            f"{cleaned['failed']} stopped runs failed, {cleaned['files']} orphaned files removed"
        )
