import json
import sys
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from datasets import batch, batch_results, dispatch
from datasets.models import BatchPrediction, ExportImportState
from inspection.models import Line
from loupe.common.lookup import named

FINISHED = (ExportImportState.DONE, ExportImportState.FAILED)


class Command(BaseCommand):
    help = (
        "Predict every image of a folder or zip with LINE's active model, on the batch queue's "
        "workers. Prints the batch as JSON; with --wait, once it has finished."
    )

    def add_arguments(self, parser):
        parser.add_argument("line")
        parser.add_argument("source", type=Path, help="a folder of images or a .zip of them")
        parser.add_argument("--user", help="who started it (default: none, the command line)")
        parser.add_argument("--wait", action="store_true", help="wait for the batch to finish")
        parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait")
        parser.add_argument(
            "--to-labeling",
            choices=["all", "defective"],
            help="with --wait: then send these images to the line's labeling queue",
        )

    def handle(self, *args, **opts):
        line = named(Line.objects.all(), opts["line"], kind="line")
        user = None
        if opts["user"]:
            user = get_user_model().objects.filter(username=opts["user"]).first()
            if user is None:
                raise CommandError(f"no user named {opts['user']!r}")
        if opts["to_labeling"] and not opts["wait"]:
            raise CommandError("--to-labeling needs --wait: images are sent once predicted")
        source: Path = opts["source"]
        try:
            if source.is_dir():
                archive = batch.zip_folder(source)
            elif source.is_file():
                archive = batch.keep_file(source)
            else:
                raise CommandError(f"{source} is neither a folder nor a file")
            record = dispatch.start_batch(
                line=line, archive=archive, source_name=source.name, user=user
            )
        except batch.BatchRefused as refused:
            for problem in refused.problems:
                self.stderr.write(f"{problem.file}: {problem.reason}")
            raise CommandError(refused.message) from refused
        if opts["wait"]:
            record = self._wait(record, opts["timeout"])
        sent = None
        if opts["to_labeling"] and record.state == ExportImportState.DONE:
            selection = batch_results.Selection.parse({"which": opts["to_labeling"]}, line=line)
            sent = batch_results.send_to_labeling(batch=record, selection=selection, user=user)
            record.refresh_from_db()
        payload = batch_results.batch_payload(record)
        if sent is not None:
            payload["to_labeling"] = sent
        self.stdout.write(json.dumps(payload, indent=2))
        if record.state == ExportImportState.FAILED:
            raise CommandError(f"batch {record.pk} failed: {record.error}")

    def _wait(self, record: BatchPrediction, timeout: float) -> BatchPrediction:
        deadline = time.monotonic() + timeout
        shown = -1
        while True:
            record.refresh_from_db()
            if record.done != shown and sys.stderr.isatty():
                self.stderr.write(f"\r{record.done} of {record.total}", ending="")
                shown = record.done
            if record.state in FINISHED:
                return record
            if time.monotonic() > deadline:
                raise CommandError(
                    f"batch {record.pk} not finished after {timeout:.0f} s "
                    f"({record.done} of {record.total}); is a worker on the "
                    f"{batch.batch_queue()} queue?"
                )
            time.sleep(0.5)
