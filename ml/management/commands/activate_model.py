from django.core.management.base import BaseCommand, CommandError

from inspection.models import Line
from loupe.common.lookup import named
from ml.models import ModelVersion
from ml.services import set_active_version


class Command(BaseCommand):
    help = "Make a model version the line's active model (also how to roll back)."

    def add_arguments(self, parser):
        parser.add_argument("line")
        parser.add_argument("version", help="version name (v3) or id")
        parser.add_argument("--reason", default="")

    def handle(self, *args, **opts):
        line = named(Line.objects.all(), opts["line"], kind="line")
        key = opts["version"]
        version = ModelVersion.objects.filter(name=key).first()
        if version is None and key.isdigit():
            version = ModelVersion.objects.filter(pk=int(key)).first()
        if version is None:
            raise CommandError(f"no model version {key!r}")
        old = line.active_model.name if line.active_model else "none"
        set_active_version(
            line=line, model_version=version, changed_by="cli", reason=opts["reason"]
        )
        self.stdout.write(f"line {line.name}: active model {old} -> {version.name}")
