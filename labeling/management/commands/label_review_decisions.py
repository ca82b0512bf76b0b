from django.core.management.base import BaseCommand

from labeling import review_labels


class Command(BaseCommand):
    help = (
        "Label every final review decision that has no label yet (the decisions taken before "
        "review decisions became labels). Safe to run again: a decision is labeled once."
    )

    def handle(self, *args, **opts):
        total = 0
        while written := review_labels.label_final_decisions():
            total += written
        self.stdout.write(f"{total} review label(s) written")
