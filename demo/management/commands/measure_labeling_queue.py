import json
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from demo.labeling_measure import QUICK, MeasureSettings, run_measurement, save_measurement


def _steps(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise CommandError(f"--steps takes numbers separated by commas, not {text!r}") from error


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


class Command(BaseCommand):
    help = (
        "Measure the labeling queue's order against random and arrival order: from one pool "
        "of recent items (a new defect type in about a quarter), label the first b items of "
        "each order, retrain with one recipe, and report the new type's recall per b. Prints "
        "JSON and stores the result for its page (/models/queue-measurements/<pk>/)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--quick", action="store_true", help="a reduced setup, for tests (about a minute)"
        )
        parser.add_argument("--seeds", type=int, help="how many seeds (default 3, quick 1)")
        parser.add_argument("--pool", type=int, help="items in the pool (default 400)")
        parser.add_argument("--steps", type=_steps, help="labeled items per step, e.g. 10,20,40")
        parser.add_argument(
            "--orders",
            type=_names,
            help="orders to measure, e.g. queue,random,arrival (default queue,random)",
        )
        parser.add_argument("--work-dir", type=Path, help="keep the generated images here")
        parser.add_argument("--no-save", action="store_true", help="print only; store nothing")

    def handle(self, *args, **opts):
        settings = QUICK if opts["quick"] else MeasureSettings()
        overrides = {}
        if opts["seeds"] is not None:
            if opts["seeds"] < 1:
                raise CommandError("--seeds must be at least 1")
            overrides["seeds"] = tuple(range(1, opts["seeds"] + 1))
        if opts["pool"] is not None:
            overrides["pool_images"] = opts["pool"]
        if opts["steps"] is not None:
            overrides["steps"] = opts["steps"]
        if opts["orders"] is not None:
            overrides["orders"] = opts["orders"]
        try:
            settings = MeasureSettings(**{**settings.__dict__, **overrides})
        except ValueError as error:
            raise CommandError(str(error)) from error

        def log(line: str) -> None:
            self.stderr.write(line)

        with tempfile.TemporaryDirectory(prefix="loupe-queue-measure-") as scratch:
            result = run_measurement(
                work_dir=opts["work_dir"] or Path(scratch), settings=settings, log=log
            )
        if not opts["no_save"]:
            measurement = save_measurement(result=result, quick=opts["quick"])
            result = {**result, "measurement": measurement.pk}
        self.stdout.write(json.dumps(result, indent=1))
