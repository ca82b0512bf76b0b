import json
import time

from django.core.management.base import BaseCommand, CommandError

from inspection.models import Line
from loupe.common.errors import LoupeError
from loupe.common.lookup import named
from ml import pipeline
from ml.models import PipelineRun, PipelineRunState


class Command(BaseCommand):
    help = (
        "Start a retraining run of a line by hand (any MLOps level), or retry a failed run "
        "from its failed step. Steps run on the training queue's workers (in-process when "
        "Loupe runs embedded)."
    )

    def add_arguments(self, parser):
        parser.add_argument("line", nargs="?")
        parser.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a pipeline setting, e.g. --set epochs=6 (value read as JSON)",
        )
        parser.add_argument("--retry", type=int, metavar="RUN_ID", help="retry this run")
        parser.add_argument("--wait", action="store_true", help="print steps until it ends")

    def handle(self, *args, **opts):
        try:
            if opts["retry"]:
                run = PipelineRun.objects.filter(pk=opts["retry"]).first()
                if run is None:
                    raise CommandError(f"no run {opts['retry']}")
                run = pipeline.retry_run(run=run)
            else:
                if not opts["line"]:
                    raise CommandError("name a line, or --retry RUN_ID")
                run = pipeline.start_run(
                    line=named(Line.objects.all(), opts["line"], kind="line"),
                    config=self._overrides(opts["set"]),
                )
        except LoupeError as error:
            raise CommandError(error.message) from None
        self.stdout.write(f"run {run.pk} of {run.line.name}: /models/runs/{run.pk}/")
        if opts["wait"]:
            self._follow(run)

    def _overrides(self, pairs: list[str]) -> dict:
        config = {}
        for pair in pairs:
            key, _, value = pair.partition("=")
            try:
                config[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                raise CommandError(
                    f"--set {pair}: the value must be JSON (3, 0.001, [1, 2])"
                ) from None
        return config

    def _follow(self, run):
        seen = {}
        while True:
            run.refresh_from_db()
            for step in run.steps.order_by("position"):
                if seen.get(step.name) != step.state:
                    seen[step.name] = step.state
                    took = f" in {step.duration_s:.1f}s" if step.finished_at else ""
                    self.stdout.write(f"  {step.name}: {step.state}{took} {step.error}".rstrip())
            if run.state in (PipelineRunState.SUCCEEDED, PipelineRunState.FAILED):
                break
            time.sleep(1.0)
        if run.state == PipelineRunState.FAILED:
            raise CommandError(f"run {run.pk} failed: {run.error}")
        gate = run.candidate.evaluation.get("gate", {})
        self.stdout.write(
            f"candidate {run.candidate.name} ({run.candidate.status}); gate "
            f"{'passed' if gate.get('passed') else 'not passed'}"
        )
