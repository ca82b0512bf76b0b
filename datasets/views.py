"""Dataset pages: versions (freeze, detail, manifest), exports (start, status, download) and
imports (upload, status). Rules live in datasets.services; every lookup goes through
datasets.selectors, so a version or import of another line is a 404."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from datasets import dispatch, exporters, importers, limits, services
from datasets.models import ExportFormat, ExportImportState, ImportFormat, Split
from datasets.payloads import export_payload, import_payload
from datasets.selectors import visible_exports, visible_imports, visible_versions
from inspection.selectors import visible_lines
from labeling.models import LabelSource
from loupe.common.errors import LoupeError
from loupe.common.json_views import json_endpoint
from loupe.common.permissions import (
    CAN_EXPORT_DATASETS,
    CAN_FREEZE_DATASETS,
    CAN_IMPORT_DATASETS,
    CAN_VIEW_DATASETS,
)


class FreezeForm(forms.Form):
    name = forms.CharField(required=False, max_length=services.MAX_NAME_LENGTH)
    lines = forms.MultipleChoiceField(
        required=False, help_text="None chosen: all your lines.", widget=forms.SelectMultiple
    )
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    sources = forms.MultipleChoiceField(
        required=False, choices=LabelSource.choices, widget=forms.CheckboxSelectMultiple
    )
    classes = forms.CharField(required=False, help_text="Comma-separated; empty: all.")

    def __init__(self, data=None, *, lines):
        super().__init__(data)
        self.fields["lines"].choices = [(line.name, line.name) for line in lines]

    def filters(self) -> dict:
        data = self.cleaned_data
        classes = [c.strip() for c in data["classes"].split(",") if c.strip()]
        filters = {"lines": data["lines"], "sources": data["sources"], "classes": classes}
        for key in ("date_from", "date_to"):
            if data[key]:
                filters[key] = data[key].isoformat()
        return {key: value for key, value in filters.items() if value}


class ImportForm(forms.Form):
    line = forms.ModelChoiceField(queryset=None, empty_label=None)
    format = forms.ChoiceField(choices=ImportFormat.choices)
    archive = forms.FileField(help_text="A .zip file.")

    def __init__(self, data=None, files=None, *, lines):
        super().__init__(data, files)
        self.fields["line"].queryset = lines


def describe_filters(filters: dict) -> str:
    parts = [
        f"{key.replace('_', ' ')}: {', '.join(value) if isinstance(value, list) else value}"
        for key, value in filters.items()
    ]
    return "; ".join(parts) or "none (every line)"


def _version_or_404(request, pk):
    version = get_object_or_404(visible_versions(request.user).select_related("created_by"), pk=pk)
    version.filters_text = describe_filters(version.filters)
    return version


def _list_page(request, form, status=200):
    versions = list(visible_versions(request.user).select_related("created_by"))
    for version in versions:
        version.filters_text = describe_filters(version.filters)
    return render(
        request,
        "datasets/list.html",
        {
            "versions": versions,
            "form": form,
            "can_freeze": request.user.has_perm(CAN_FREEZE_DATASETS),
        },
        status=status,
    )


@require_GET
@permission_required(CAN_VIEW_DATASETS, raise_exception=True)
def version_list(request):
    return _list_page(request, FreezeForm(lines=visible_lines(request.user)))


@require_POST
@permission_required(CAN_FREEZE_DATASETS, raise_exception=True)
def freeze(request):
    form = FreezeForm(request.POST, lines=visible_lines(request.user))
    if not form.is_valid():
        return _list_page(request, form, status=400)
    try:
        version, created = services.freeze_dataset(
            filters=form.filters(), user=request.user, name=form.cleaned_data["name"] or None
        )
    except LoupeError as error:
        form.add_error(None, error.message)
        return _list_page(request, form, status=400)
    if created:
        messages.success(request, f"Froze {version.item_count} items as {version.name}.")
    else:
        messages.info(request, f"The same labels are already frozen as {version.name}.")
    return redirect("datasets:detail", pk=version.pk)


@require_GET
@permission_required(CAN_VIEW_DATASETS, raise_exception=True)
def version_detail(request, pk):
    version = _version_or_404(request, pk)
    splits = [{"name": s, **version.counts[s]} for s in Split.values if s in version.counts]
    return render(
        request,
        "datasets/detail.html",
        {
            "version": version,
            "lines": version.lines.order_by("name"),
            "splits": splits,
            "formats": ExportFormat.choices,
            "exports": version.exports.select_related("created_by")[:20],
            "can_export": request.user.has_perm(CAN_EXPORT_DATASETS),
        },
    )


@require_GET
@permission_required(CAN_VIEW_DATASETS, raise_exception=True)
def manifest(request, pk):
    return manifest_response(_version_or_404(request, pk))


def manifest_response(version) -> StreamingHttpResponse:
    """manifest.csv streamed row by row: a version of 50,000 items is never built in memory."""
    response = StreamingHttpResponse(
        exporters.manifest_lines(version), content_type="text/csv; charset=utf-8"
    )
    name = slugify(version.name) or f"version-{version.pk}"
    response["Content-Disposition"] = f'attachment; filename="{name}-manifest.csv"'
    return response


@require_POST
@json_endpoint
def start_export(request, pk):
    """POST {format}: 202 with the export's status; the page then polls status_url."""
    if not request.user.has_perm(CAN_EXPORT_DATASETS):
        raise PermissionDenied
    version = _version_or_404(request, pk)
    export, _ = dispatch.start_export(
        version=version, fmt=request.json.get("format", ""), user=request.user
    )
    return JsonResponse(export_payload(export), status=202)


@require_GET
@json_endpoint
def export_status(request, pk):
    if not request.user.has_perm(CAN_VIEW_DATASETS):
        raise PermissionDenied
    return export_payload(get_object_or_404(visible_exports(request.user), pk=pk))


def download_response(export) -> FileResponse:
    if export.state != ExportImportState.DONE:
        raise Http404("the export is not finished")
    if export.removed_at is not None:
        raise Http404(
            f"the export's file was removed after {limits.export_keep_days()} days: "
            "export the version again"
        )
    try:
        handle = open(services.export_path(export), "rb")  # noqa: SIM115 - FileResponse closes it
    except FileNotFoundError:
        raise Http404("the export's file was removed") from None
    name = slugify(export.version.name) or f"version-{export.version_id}"
    return FileResponse(handle, as_attachment=True, filename=f"{name}-{export.format}.zip")


@require_GET
@permission_required(CAN_VIEW_DATASETS, raise_exception=True)
def export_download(request, pk):
    export = get_object_or_404(visible_exports(request.user).select_related("version"), pk=pk)
    return download_response(export)


@require_http_methods(["GET", "POST"])
@permission_required(CAN_IMPORT_DATASETS, raise_exception=True)
def import_page(request):
    lines = visible_lines(request.user)
    form = ImportForm(lines=lines)
    status, refused = 200, None
    if request.method == "POST":
        # refuse an oversized upload from its header, before Django reads it to disk
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > limits.import_max_bytes() + 1024 * 1024:
            refused = f"the archive is over {limits.import_max_bytes()} bytes"
            status = 413
        else:
            form = ImportForm(request.POST, request.FILES, lines=lines)
            if form.is_valid():
                try:
                    record = dispatch.start_import(
                        line=form.cleaned_data["line"],
                        fmt=form.cleaned_data["format"],
                        upload=form.cleaned_data["archive"],
                        user=request.user,
                    )
                except LoupeError as error:
                    form.add_error(None, error.message)
                else:
                    return redirect("datasets:import-detail", pk=record.pk)
            status = 400
    imports = visible_imports(request.user).select_related("line", "created_by")[:20]
    return render(
        request,
        "datasets/import.html",
        {
            "form": form,
            "refused": refused,
            "imports": imports,
            "max_bytes": limits.import_max_bytes(),
            "max_files": limits.import_max_files(),
            "ok_folders": sorted(importers.OK_FOLDERS),
        },
        status=status,
    )


@require_GET
@permission_required(CAN_IMPORT_DATASETS, raise_exception=True)
def import_detail(request, pk):
    record = get_object_or_404(
        visible_imports(request.user).select_related("line", "created_by"), pk=pk
    )
    return render(request, "datasets/import_detail.html", {"record": record})


@require_GET
@json_endpoint
def import_status(request, pk):
    if not request.user.has_perm(CAN_IMPORT_DATASETS):
        raise PermissionDenied
    record = get_object_or_404(visible_imports(request.user).select_related("line"), pk=pk)
    return import_payload(record)
