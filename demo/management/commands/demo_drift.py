import logging
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from demo.drift_scenario import DriftSettings, phase_table, run_drift_demo
from inspection.models import Line


class Command(BaseCommand):
    help = (
        "Watch a line at full automation drift: unshifted images, a lighting change inside the "
        "training's augmentation, a camera shift outside it, then a defect type the model never "
        "saw. Prints each phase and, as its last line, one JSON object with the figures."
    )

    def add_arguments(self, parser):
        parser.add_argument("--line", default="drift-line", help="name of the line to create")
        parser.add_argument("--seed", type=int, default=DriftSettings.seed)
        parser.add_argument(
            "--new-type-share",
            type=float,
            default=DriftSettings.new_type_share,
            help="share of all items of the new defect type (default: %(default)s)",
        )
        parser.add_argument("--work-dir", type=Path, help="where the generated images go")

    def handle(self, *args, **opts):
        if Line.objects.filter(name=opts["line"]).exists():
            raise CommandError(f"a line named {opts['line']!r} exists: pass --line NEW_NAME")
        if not 0.0 < opts["new_type_share"] < 0.5:
            raise CommandError("--new-type-share must be above 0 and below 0.5")
        # in-process tasks log a line each; the demo prints what happened
        logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
        settings = DriftSettings(
            line_name=opts["line"], seed=opts["seed"], new_type_share=opts["new_type_share"]
        )
        self.stdout.write(
            f"the new type ({settings.new_type}) will be on {settings.new_type_share:.0%} "
            "of items once it appears"
        )
        with tempfile.TemporaryDirectory(prefix="loupe-drift-") as scratch:
            work_dir = opts["work_dir"] or Path(scratch)
            result = run_drift_demo(work_dir=work_dir, settings=settings, out=self.stdout.write)
        self.stdout.write("")
        self.stdout.write(phase_table(result))
        self.stdout.write(f"seconds: {result.seconds}")
        self.stdout.write(result.summary_line())
