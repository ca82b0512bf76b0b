import time

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from inspection import selectors, submission
from inspection.api.serializers import (
    InspectionAnswerSerializer,
    SubmissionSerializer,
    read_submission,
)
from inspection.images import validate_image
from inspection.models import Inspection, Station
from loupe.common import metrics
from loupe.common.api_docs import error_responses


class InspectionListView(APIView):
    parser_classes = [MultiPartParser]

    def dispatch(self, request, *args, **kwargs):
        # the receive and total figures start here, before the body is read
        self.started = time.perf_counter()
        return super().dispatch(request, *args, **kwargs)

    def finalize_response(self, request, response, *args, **kwargs):
        if 400 <= response.status_code < 500:
            _count_refusal(request, response)
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        request={"multipart/form-data": SubmissionSerializer},
        responses={
            201: OpenApiResponse(InspectionAnswerSerializer, description="Received and routed."),
            200: OpenApiResponse(
                InspectionAnswerSerializer,
                description="A retry: this external_id with this image was received before.",
            ),
            **error_responses(
                [400, 401, 403, 409, 413, 415, 503],
                {
                    400: "A field is missing, sent twice or breaks its rule, or the image is "
                    "truncated or corrupt.",
                    403: "The station is disabled.",
                    409: "This external_id was received before with another image.",
                    413: "The image is over the byte or pixel limit, or the form fields are "
                    "too large.",
                    415: "The body is not multipart/form-data, or the image is not a JPEG or "
                    "PNG in a supported mode.",
                },
            ),
        },
        summary="Submit a product image",
        description=(
            "Creates the inspection and answers within the line's latency budget with "
            "accept, reject or review. The same external_id with the same image returns the "
            "existing inspection (200); with another image it answers 409. Nothing is stored "
            "when the request is refused."
        ),
    )
    def post(self, request):
        external_id, metadata, data = read_submission(request)
        image = validate_image(
            data,
            max_bytes=settings.LOUPE_MAX_IMAGE_BYTES,
            max_pixels=settings.LOUPE_MAX_IMAGE_PIXELS,
        )
        station = request.auth
        inspection, created = submission.submit_inspection(
            station=station,
            external_id=external_id,
            image=image,
            metadata=metadata,
            started=self.started,
        )
        answer = InspectionAnswerSerializer(inspection).data
        if created:
            submission.record_request_time(
                station=station, inspection=inspection, started=self.started
            )
        return Response(answer, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@metrics.never_raises
def _count_refusal(request, response) -> None:
    station = request.auth  # authentication ran before any refusal (None when it failed)
    known = isinstance(station, Station)
    code = response.data.get("error") if isinstance(response.data, dict) else None
    metrics.record_invalid_input(
        line=station.line.name if known else "",
        station=station.name if known else "",
        code=str(code or response.status_code),
    )


class InspectionDetailView(APIView):
    @extend_schema(
        responses={
            200: InspectionAnswerSerializer,
            **error_responses(
                [401, 403, 404, 503],
                {
                    403: "The station is disabled.",
                    404: "No inspection with this id was sent by this station.",
                },
            ),
        },
        summary="Current state of an inspection",
    )
    def get(self, request, pk: int):
        # A station sees only its own inspections; anything else is "not found".
        get_object_or_404(Inspection, pk=pk, station=request.auth)
        return Response(InspectionAnswerSerializer(selectors.inspection_with_answer(pk)).data)
