import logging
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from demo.rollout_scenario import RolloutSettings, run_rollout_demo, summary_line
from inspection.models import Line


class Command(BaseCommand):
    help = (
        "Roll new models out on a line at full automation: a challenger trained on flipped "
        "labels and one blind to scratches, each started as a 5% canary and rolled back by "
        "the gate, then a good one switched in blue-green under station traffic and promoted. "
        "Prints each phase and, as its last line, one JSON object with the figures."
    )

    def add_arguments(self, parser):
        parser.add_argument("--line", default=RolloutSettings.line_name, help="line to create")
        parser.add_argument("--seed", type=int, default=RolloutSettings.seed)
        parser.add_argument("--work-dir", type=Path, help="where the generated images go")

    def handle(self, *args, **opts):
        if Line.objects.filter(name=opts["line"]).exists():
            raise CommandError(f"a line named {opts['line']!r} exists: pass --line NEW_NAME")
        # in-process tasks log a line each; the demo prints what happened
        logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
        settings = RolloutSettings(line_name=opts["line"], seed=opts["seed"])
        with tempfile.TemporaryDirectory(prefix="loupe-rollout-") as scratch:
            work_dir = opts["work_dir"] or Path(scratch)
            summary = run_rollout_demo(work_dir=work_dir, settings=settings, out=self.stdout.write)
        self.stdout.write(summary_line(summary))
