"""Batch prediction pages: upload a zip, follow its progress, read its results (CSV, JSON),
send its images to the labeling queue. Rules live in datasets.batch; lookups go through
datasets.selectors, so a batch of another line is a 404."""

import csv
import io
import itertools
import json

from django import forms
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from datasets import batch, batch_results, dispatch, limits
from datasets.models import BatchPrediction
from datasets.selectors import visible_batches
from inspection.selectors import visible_lines
from loupe.common.errors import LoupeError
from loupe.common.json_views import json_endpoint
from loupe.common.permissions import CAN_IMPORT_DATASETS

SHOWN_ROWS = 100


class BatchForm(forms.Form):
    line = forms.ModelChoiceField(queryset=None, empty_label=None)
    archive = forms.FileField(help_text="A .zip of .png or .jpg images.")

    def __init__(self, data=None, files=None, *, lines):
        super().__init__(data, files)
        self.fields["line"].queryset = lines


def _batch_or_404(request, pk) -> BatchPrediction:
    return get_object_or_404(
        visible_batches(request.user).select_related("line", "model_version", "created_by"), pk=pk
    )


@require_http_methods(["GET", "POST"])
@permission_required(CAN_IMPORT_DATASETS, raise_exception=True)
def batch_list(request):
    lines = visible_lines(request.user)
    form = BatchForm(lines=lines)
    status, refused, problems = 200, None, []
    if request.method == "POST":
        # refuse an oversized upload from its header, before Django reads it to disk
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > limits.import_max_bytes() + 1024 * 1024:
            refused, status = f"the archive is over {limits.import_max_bytes()} bytes", 413
        else:
            form = BatchForm(request.POST, request.FILES, lines=lines)
            status = 400
            if form.is_valid():
                upload = form.cleaned_data["archive"]
                try:
                    record = dispatch.start_batch(
                        line=form.cleaned_data["line"],
                        archive=batch.keep_upload(upload),
                        source_name=upload.name,
                        user=request.user,
                    )
                except LoupeError as error:
                    refused, status = error.message, error.status_code
                    problems = getattr(error, "problems", [])[:50]
                else:
                    return redirect("datasets:batch-detail", pk=record.pk)
    return render(
        request,
        "datasets/batch_list.html",
        {
            "form": form,
            "refused": refused,
            "problems": problems,
            "batches": visible_batches(request.user).select_related(
                "line", "model_version", "created_by"
            )[:20],
            "max_bytes": limits.import_max_bytes(),
            "max_files": limits.import_max_files(),
        },
        status=status,
    )


@require_GET
@permission_required(CAN_IMPORT_DATASETS, raise_exception=True)
def batch_detail(request, pk):
    record = _batch_or_404(request, pk)
    return render(
        request,
        "datasets/batch_detail.html",
        {
            "record": record,
            "rows": [
                {**row, "probability": row["defect_probability"]}
                for row in itertools.islice(batch_results.result_rows(record), SHOWN_ROWS)
            ],
            "shown": SHOWN_ROWS,
            "counts": batch_results.batch_payload_counts(record),
        },
    )


@require_GET
@json_endpoint
def batch_status(request, pk):
    if not request.user.has_perm(CAN_IMPORT_DATASETS):
        raise PermissionDenied
    return batch_results.batch_payload(_batch_or_404(request, pk))


def _download_name(record: BatchPrediction, extension: str) -> str:
    stem = slugify(record.source_name.removesuffix(".zip")) or "batch"
    return f"batch-{record.pk}-{stem}-results.{extension}"


def _csv_lines(record: BatchPrediction):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(batch_results.RESULT_FIELDS)
    for row in batch_results.result_rows(record):
        writer.writerow(
            json.dumps(row[field]) if field == "regions" else row[field]
            for field in batch_results.RESULT_FIELDS
        )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _json_chunks(record: BatchPrediction):
    status = batch_results.batch_payload(record)
    head = {key: value for key, value in status.items() if not key.endswith("url")}
    yield json.dumps(head)[:-1] + ', "images": ['
    for number, row in enumerate(batch_results.result_rows(record)):
        yield ("," if number else "") + json.dumps(row)
    yield "]}"


def _results(request, pk, extension: str, content_type: str, chunks) -> StreamingHttpResponse:
    record = _batch_or_404(request, pk)
    if record.state != "done":
        raise batch.BatchNotFinished(f"the batch is {record.state}; its results come when done")
    response = StreamingHttpResponse(chunks(record), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{_download_name(record, extension)}"'
    return response


@require_GET
@json_endpoint
def batch_csv(request, pk):
    """results.csv, streamed: one row per file, regions as JSON in their column."""
    if not request.user.has_perm(CAN_IMPORT_DATASETS):
        raise PermissionDenied
    return _results(request, pk, "csv", "text/csv; charset=utf-8", _csv_lines)


@require_GET
@json_endpoint
def batch_json(request, pk):
    if not request.user.has_perm(CAN_IMPORT_DATASETS):
        raise PermissionDenied
    return _results(request, pk, "json", "application/json", _json_chunks)


@require_POST
@json_endpoint
def send_to_labeling(request, pk):
    """POST {which: all | defective | range, min_probability, max_probability}: the selected
    images go to the line's labeling queue; 200 with {selected, queued, sent_to_labeling}."""
    if not request.user.has_perm(CAN_IMPORT_DATASETS):
        raise PermissionDenied
    record = _batch_or_404(request, pk)
    selection = batch_results.Selection.parse(request.json, line=record.line)
    outcome = batch_results.send_to_labeling(batch=record, selection=selection, user=request.user)
    record.refresh_from_db()
    return {**outcome, "sent_to_labeling": record.sent_count}
