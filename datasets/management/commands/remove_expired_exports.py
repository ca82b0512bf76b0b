from django.core.management.base import BaseCommand

from datasets import limits, services


class Command(BaseCommand):
    help = (
        "Remove the zips of exports finished more than LOUPE_EXPORT_KEEP_DAYS days ago (the "
        "export records stay). Workers do this after each export; run it from cron on a "
        "server that rarely exports."
    )

    def handle(self, *args, **opts):
        removed = services.remove_expired_exports()
        self.stdout.write(
            f"removed {removed} export zips older than {limits.export_keep_days()} days"
        )
