from pathlib import Path

from django.core.management.base import BaseCommand

from inspection.models import Line
from loupe.common.lookup import named
from ml.services import describe_metrics, set_active_version, train_and_register_model


class Command(BaseCommand):
    help = (
        "Train a model on a folder written by generate_images, register it as a model "
        "version for LINE, optionally activate it, and print the new version's id."
    )

    def add_arguments(self, parser):
        parser.add_argument("data_dir", type=Path)
        parser.add_argument("--line", required=True)
        parser.add_argument("--activate", action="store_true")
        parser.add_argument("--epochs", type=int, default=None)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--name", default=None)

    def handle(self, *args, **opts):
        line = named(Line.objects.all(), opts["line"], kind="line")
        version = train_and_register_model(
            data_dir=opts["data_dir"],
            name=opts["name"],
            epochs=opts["epochs"],
            seed=opts["seed"],
            log=lambda text: self.stderr.write(text),
        )
        self.stderr.write(
            f"model {version.name}: trained in {version.train_seconds:.0f} s; "
            + describe_metrics(version.metrics)
        )
        if opts["activate"]:
            set_active_version(line=line, model_version=version, changed_by="cli")
            self.stderr.write(f"activated on line {line.name}")
        self.stdout.write(str(version.pk))
