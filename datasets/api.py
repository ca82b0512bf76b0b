"""The datasets API for scripts: the same operations as the pages, as JSON.

A script sends a Loupe user's API token (`Authorization: Bearer <token>`, accounts.api_auth; a
browser's session works too, with its CSRF check); a station's token is refused here. What a
user may do follows their role, and what they see their lines, exactly as in the pages
(another line's version is a 404).
"""

from django.contrib.auth.decorators import login_not_required
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api_auth import ApiTokenAuthentication
from datasets import dispatch, limits, services
from datasets.api_serializers import (
    ExportListSerializer,
    ExportRequestSerializer,
    ExportSerializer,
    FreezeSerializer,
    ImportListSerializer,
    ImportRequestSerializer,
    ImportSerializer,
    VersionListSerializer,
    VersionSerializer,
)
from datasets.payloads import export_payload, import_payload, version_payload
from datasets.selectors import visible_exports, visible_imports, visible_versions
from datasets.views import download_response, manifest_response
from inspection.selectors import visible_lines
from loupe.common.api_docs import error_responses
from loupe.common.permissions import (
    CAN_EXPORT_DATASETS,
    CAN_FREEZE_DATASETS,
    CAN_IMPORT_DATASETS,
    CAN_VIEW_DATASETS,
)


class HasDatasetPermission(permissions.BasePermission):
    """A signed-in user (not a station) whose role grants the view's permission for the
    method: `view.permissions = {"GET": ..., "POST": ...}`."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if user is None or not getattr(user, "is_authenticated", False):
            raise NotAuthenticated(
                "send a Loupe user's API token as 'Authorization: Bearer <token>', or sign in"
            )
        # HEAD and OPTIONS read what GET reads; a method the view has no handler for is let
        # through so that DRF answers 405, not a 403 that blames the user's role
        method = "GET" if request.method in ("HEAD", "OPTIONS") else request.method
        if not hasattr(view, method.lower()):
            return True
        needed = view.permissions.get(method)
        if needed is None or not user.has_perm(needed):
            raise PermissionDenied("your role does not allow this")
        return True


class DatasetsAPIView(APIView):
    authentication_classes = [ApiTokenAuthentication, SessionAuthentication]
    permission_classes = [HasDatasetPermission]
    permissions: dict = {}


# every operation: no or bad credentials, a role without the right, a database or broker down
READ_ERRORS = [401, 403, 503]
ONE_ITEM_ERRORS = [*READ_ERRORS, 404]


class VersionListView(DatasetsAPIView):
    permissions = {"GET": CAN_VIEW_DATASETS, "POST": CAN_FREEZE_DATASETS}
    parser_classes = [JSONParser]

    @extend_schema(
        responses={200: VersionListSerializer, **error_responses(READ_ERRORS)},
        summary="Dataset versions you can see",
        operation_id="datasets_list",
    )
    def get(self, request):
        versions = visible_versions(request.user).select_related("created_by")
        return Response({"versions": [version_payload(v, api=True) for v in versions]})

    @extend_schema(
        request=FreezeSerializer,
        responses={
            201: VersionSerializer,
            200: VersionSerializer,
            **error_responses(
                [400, *READ_ERRORS, 415],
                {
                    400: "A field breaks its rule, a line is not yours, the name is taken, or the "
                    "filters select no labeled inspection."
                },
            ),
        },
        summary="Freeze labeled inspections into a version",
        description="201 with a new version; 200 with the existing one when the same "
        "revisions are already frozen.",
    )
    def post(self, request):
        body = FreezeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        filters = dict(body.validated_data.get("filters", {}))
        version, created = services.freeze_dataset(
            filters=filters, user=request.user, name=body.validated_data.get("name")
        )
        return Response(
            version_payload(version, api=True),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class VersionDetailView(DatasetsAPIView):
    permissions = {"GET": CAN_VIEW_DATASETS}

    @extend_schema(
        responses={200: VersionSerializer, **error_responses(ONE_ITEM_ERRORS)},
        summary="One dataset version",
    )
    def get(self, request, pk: int):
        version = get_object_or_404(visible_versions(request.user), pk=pk)
        return Response(version_payload(version, api=True))


class ManifestView(DatasetsAPIView):
    permissions = {"GET": CAN_VIEW_DATASETS}

    @extend_schema(
        responses={(200, "text/csv"): OpenApiTypes.STR, **error_responses(ONE_ITEM_ERRORS)},
        summary="manifest.csv",
    )
    def get(self, request, pk: int):
        return manifest_response(get_object_or_404(visible_versions(request.user), pk=pk))


class VersionExportsView(DatasetsAPIView):
    permissions = {"GET": CAN_VIEW_DATASETS, "POST": CAN_EXPORT_DATASETS}
    parser_classes = [JSONParser]

    @extend_schema(
        responses={200: ExportListSerializer, **error_responses(ONE_ITEM_ERRORS)},
        summary="Exports of a version",
        operation_id="datasets_version_exports_list",
    )
    def get(self, request, pk: int):
        version = get_object_or_404(visible_versions(request.user), pk=pk)
        return Response({"exports": [export_payload(e, api=True) for e in version.exports.all()]})

    @extend_schema(
        request=ExportRequestSerializer,
        responses={202: ExportSerializer, **error_responses([400, *ONE_ITEM_ERRORS, 415])},
        summary="Start an export (a zip written by a worker)",
        description="202 with the export's status; poll status_url until state is done, then "
        "GET download_url. While the same export is queued or running, that one is returned.",
    )
    def post(self, request, pk: int):
        version = get_object_or_404(visible_versions(request.user), pk=pk)
        body = ExportRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        export, _ = dispatch.start_export(
            version=version, fmt=body.validated_data["format"], user=request.user
        )
        return Response(export_payload(export, api=True), status=status.HTTP_202_ACCEPTED)


class ExportDetailView(DatasetsAPIView):
    permissions = {"GET": CAN_VIEW_DATASETS}

    @extend_schema(
        responses={200: ExportSerializer, **error_responses(ONE_ITEM_ERRORS)},
        summary="An export's progress",
    )
    def get(self, request, pk: int):
        export = get_object_or_404(visible_exports(request.user), pk=pk)
        return Response(export_payload(export, api=True))


class ExportDownloadView(DatasetsAPIView):
    permissions = {"GET": CAN_VIEW_DATASETS}

    @extend_schema(
        responses={
            (200, "application/zip"): OpenApiTypes.BINARY,
            **error_responses(
                ONE_ITEM_ERRORS,
                {404: "No such export of yours, or it is not finished, or its zip was removed."},
            ),
        },
        summary="The zip",
    )
    def get(self, request, pk: int):
        export = get_object_or_404(visible_exports(request.user).select_related("version"), pk=pk)
        return download_response(export)


class ImportListView(DatasetsAPIView):
    permissions = {"GET": CAN_IMPORT_DATASETS, "POST": CAN_IMPORT_DATASETS}
    parser_classes = [MultiPartParser]

    @extend_schema(
        responses={200: ImportListSerializer, **error_responses(READ_ERRORS)},
        summary="Imports into your lines",
        operation_id="datasets_imports_list",
    )
    def get(self, request):
        imports = visible_imports(request.user).select_related("line")[:100]
        return Response({"imports": [import_payload(i, api=True) for i in imports]})

    @extend_schema(
        request={"multipart/form-data": ImportRequestSerializer},
        responses={
            202: ImportSerializer,
            **error_responses(
                [400, *ONE_ITEM_ERRORS, 413, 415],
                {404: "No line of yours has this name.", 413: "The archive is over the limit."},
            ),
        },
        summary="Import a COCO or ImageFolder zip into a line",
        description="202 with the import's status; poll status_url. A refused archive ends "
        "in state failed with every bad file and its reason in problems.",
    )
    def post(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # Django reads what comes; the archive's own size is checked after
        if length > limits.import_max_bytes() + 1024 * 1024:
            return Response(
                {
                    "error": "import_refused",
                    "detail": f"the archive is over {limits.import_max_bytes()} bytes",
                },
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        body = ImportRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        line = visible_lines(request.user).filter(name=body.validated_data["line"]).first()
        if line is None:
            return Response(
                {"error": "not_found", "detail": "no such line among yours"},
                status=status.HTTP_404_NOT_FOUND,
            )
        record = dispatch.start_import(
            line=line,
            fmt=body.validated_data["format"],
            upload=body.validated_data["archive"],
            user=request.user,
        )
        return Response(import_payload(record, api=True), status=status.HTTP_202_ACCEPTED)


class ImportDetailView(DatasetsAPIView):
    permissions = {"GET": CAN_IMPORT_DATASETS}

    @extend_schema(
        responses={200: ImportSerializer, **error_responses(ONE_ITEM_ERRORS)},
        summary="An import's progress and problems",
    )
    def get(self, request, pk: int):
        record = get_object_or_404(visible_imports(request.user).select_related("line"), pk=pk)
        return Response(import_payload(record, api=True))


def as_view(view_class):
    # DRF authenticates these views itself (API token or session); the site's login redirect
    # would send a script to an HTML login page instead of a 401
    return login_not_required(view_class.as_view())
