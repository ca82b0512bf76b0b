import logging
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from demo.loop_scenario import LoopSettings, run_loop, table
from inspection.models import Line
from ml.engine.generator import ALL_CLASSES


class Command(BaseCommand):
    help = (
        "Play the data loop on a new synthetic line: a defect type the active model never saw "
        "appears, an inspector corrects the model, the policy retrains, the gate passes the "
        "candidate, which starts as a mirror challenger beside the active model. "
        "Prints the figures before and after."
    )

    def add_arguments(self, parser):
        parser.add_argument("--line", default="loop-line", help="name of the line to create")
        parser.add_argument(
            "--new-type",
            default=LoopSettings.new_type,
            choices=ALL_CLASSES,
            help="the defect type that appears (default: %(default)s)",
        )
        parser.add_argument("--work-dir", type=Path, help="where the generated images go")

    def handle(self, *args, **opts):
        if Line.objects.filter(name=opts["line"]).exists():
            raise CommandError(f"a line named {opts['line']!r} exists: pass --line NEW_NAME")
        # in-process tasks log a line per pipeline step; the demo prints each run's summary
        logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
        settings = LoopSettings(line_name=opts["line"], new_type=opts["new_type"])
        with tempfile.TemporaryDirectory(prefix="loupe-loop-") as scratch:
            work_dir = opts["work_dir"] or Path(scratch)
            result = run_loop(work_dir=work_dir, settings=settings, out=self.stdout.write)
        self.stdout.write("")
        self.stdout.write(table(result, settings))
        verdict = (
            f"{result.released} (by {result.released_by})"
            if result.released
            else "waits for a supervisor"
        )
        self.stdout.write(
            f"{result.stream_images} items after the change, {result.corrections} corrections, "
            f"{result.new_type_corrections} of them {settings.new_type}; "
            f"{result.after_version} {verdict}"
        )
        self.stdout.write(f"seconds: {result.seconds}")
