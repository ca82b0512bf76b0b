"""The review API for line-side terminals (an HMI beside the station, a script): the review
queue's next item, decide, undo, keep and release, as JSON. Rules live in review.services.

A terminal sends its inspector's API token (`Authorization: Bearer lpu_...`,
accounts.api_auth; a browser's session works too, with its CSRF check); a station's token is
refused. The same claims, roles and lines as the review page: a role that does not review is
refused (403) before anything is looked up, and another line's item is not found (404).
"""

from django.contrib.auth.decorators import login_not_required
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.utils.decorators import method_decorator
from django.views.decorators.cache import cache_control
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import permissions
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotAcceptable, NotAuthenticated, NotFound, PermissionDenied
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api_auth import ApiTokenAuthentication
from inspection import storage
from inspection.models import ReviewItem, ReviewState
from inspection.selectors import visible_lines, visible_review_items
from loupe.common.api_docs import error_responses
from loupe.common.permissions import CAN_REVIEW
from review import services
from review.api_serializers import (
    DecideAnswerSerializer,
    DecideRequestSerializer,
    EmptyRequestSerializer,
    KeepAnswerSerializer,
    NextAnswerSerializer,
    NextRequestSerializer,
    ReleaseAnswerSerializer,
    UndoAnswerSerializer,
    claimed_until,
)
from review.errors import AlreadyDecided, ClaimedByOther


class CanReview(permissions.BasePermission):
    """A signed-in user (not a station) whose role reviews items."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if user is None or not getattr(user, "is_authenticated", False):
            raise NotAuthenticated(
                "send your API token as 'Authorization: Bearer <token>', or sign in"
            )
        # a method the view has no handler for answers 405, not a 403 that blames the role
        method = "get" if request.method in ("HEAD", "OPTIONS") else request.method.lower()
        if not hasattr(view, method):
            return True
        if not user.has_perm(CAN_REVIEW):
            raise PermissionDenied("your role does not review items")
        return True


class ReviewAPIView(APIView):
    authentication_classes = [ApiTokenAuthentication, SessionAuthentication]
    permission_classes = [CanReview]
    parser_classes = [JSONParser]


# every operation: no or bad credentials, a role that does not review, a database down
ERRORS = [401, 403, 503]
ITEM_ERRORS = [*ERRORS, 404]
NOT_YOURS = {404: "No review item of that id on your lines."}


def _item_or_404(user, pk: int) -> ReviewItem:
    return get_object_or_404(visible_review_items(user).select_related("inspection__line"), pk=pk)


def _body(serializer_class, request) -> dict:
    body = serializer_class(data=request.data)
    body.is_valid(raise_exception=True)
    return body.validated_data


def _open_count(items) -> int:
    return items.filter(state=ReviewState.OPEN).count()


class NextItemView(ReviewAPIView):
    @extend_schema(
        request=NextRequestSerializer,
        responses={
            200: NextAnswerSerializer,
            **error_responses(
                [400, *ITEM_ERRORS, 415], {404: "No line of yours has the name in `line`."}
            ),
        },
        summary="Claim the next open item",
        description="Claims the oldest open item of your lines (of `line`, if named) for "
        "you, or gives back the one you already hold. Two terminals never get the same item. "
        "The claim lapses after LOUPE_REVIEW_CLAIM_S unless kept (POST .../keep). "
        "`item` is null when nothing is open.",
    )
    def post(self, request):
        body = _body(NextRequestSerializer, request)
        items = visible_review_items(request.user)
        if "line" in body:
            line = visible_lines(request.user).filter(name=body["line"]).first()
            if line is None:
                raise NotFound("no line of yours has this name")
            items = items.filter(inspection__line=line)
        item = services.claim_next_item(
            user=request.user, items=items, exclude=body.get("exclude", ())
        )
        answer = {"item": item, "open_count": _open_count(items)}
        return Response(NextAnswerSerializer(answer).data)


class _AnyAccept(DefaultContentNegotiation):
    """The image whatever the client accepts: a terminal asking for image/jpeg must not get a
    406 because only the errors are JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type


@method_decorator(cache_control(private=True, max_age=3600), name="get")
class ItemImageView(ReviewAPIView):
    content_negotiation_class = _AnyAccept

    @extend_schema(
        responses={
            (200, "image/png"): OpenApiTypes.BINARY,
            (200, "image/jpeg"): OpenApiTypes.BINARY,
            **error_responses(
                ITEM_ERRORS,
                {404: "No review item of that id on your lines, or its image file is gone."},
            ),
        },
        summary="The item's image",
    )
    def get(self, request, pk: int):
        inspection = _item_or_404(request.user, pk).inspection
        content_type = "image/png" if inspection.image_format == "PNG" else "image/jpeg"
        try:
            image = open(storage.image_path(inspection.image.name), "rb")  # noqa: SIM115
        except FileNotFoundError as error:
            raise NotFound("the item's image file is not on this server") from error
        return FileResponse(image, content_type=content_type)


class DecideView(ReviewAPIView):
    @extend_schema(
        request=DecideRequestSerializer,
        responses={
            200: DecideAnswerSerializer,
            **error_responses(
                [400, *ITEM_ERRORS, 409, 415],
                {
                    **NOT_YOURS,
                    409: "Another inspector holds the item (claimed_by_other) or decided it "
                    "(already_decided).",
                },
            ),
        },
        summary="Decide an item",
        description="Your decision becomes the inspection's final one once the undo window "
        "(`undo_until`) has passed. Repeating the same decision (a retried request) changes "
        "nothing and answers as the first time.",
    )
    def post(self, request, pk: int):
        item = _item_or_404(request.user, pk)
        body = _body(DecideRequestSerializer, request)
        item = services.decide_review_item(
            item=item,
            inspector=request.user,
            outcome=body["decision"],
            time_spent_ms=body.get("time_spent_ms"),
        )
        open_count = _open_count(visible_review_items(request.user))
        return Response(DecideAnswerSerializer(item, context={"open_count": open_count}).data)


class UndoView(ReviewAPIView):
    @extend_schema(
        request=EmptyRequestSerializer,
        responses={
            200: UndoAnswerSerializer,
            **error_responses(
                [400, *ITEM_ERRORS, 409, 415],
                {
                    **NOT_YOURS,
                    409: "Not your decision, or its undo window has passed (undo_not_allowed).",
                },
            ),
        },
        summary="Take back your decision",
        description="Within the undo window only; the item opens again, claimed for you.",
    )
    def post(self, request, pk: int):
        item = _item_or_404(request.user, pk)
        _body(EmptyRequestSerializer, request)
        item = services.undo_decision(item=item, user=request.user)
        answer = {"item": item, "open_count": _open_count(visible_review_items(request.user))}
        return Response(UndoAnswerSerializer(answer).data)


class KeepView(ReviewAPIView):
    @extend_schema(
        request=EmptyRequestSerializer,
        responses={
            200: KeepAnswerSerializer,
            **error_responses(
                [400, *ITEM_ERRORS, 409, 415],
                {**NOT_YOURS, 409: "Another inspector holds or decided the item."},
            ),
        },
        summary="Keep your claim while the item is on screen",
    )
    def post(self, request, pk: int):
        item = _item_or_404(request.user, pk)
        _body(EmptyRequestSerializer, request)
        if not services.keep_claim(item=item, user=request.user):
            item.refresh_from_db()
            if item.state == ReviewState.OPEN:
                raise ClaimedByOther(f"review item {item.pk} is being reviewed by someone else")
            raise AlreadyDecided(f"review item {item.pk} was already decided")
        item.refresh_from_db()
        return Response(
            KeepAnswerSerializer({"kept": True, "claimed_until": claimed_until(item)}).data
        )


class ReleaseView(ReviewAPIView):
    @extend_schema(
        request=EmptyRequestSerializer,
        responses={
            200: ReleaseAnswerSerializer,
            **error_responses([400, *ITEM_ERRORS, 415], NOT_YOURS),
        },
        summary="Give an undecided item back to the queue",
        description="Safe to repeat; an item someone else holds or decided is left as it is.",
    )
    def post(self, request, pk: int):
        item = _item_or_404(request.user, pk)
        _body(EmptyRequestSerializer, request)
        services.release_claim(item=item, user=request.user)
        return Response(ReleaseAnswerSerializer({"released": True}).data)


def as_view(view_class):
    # DRF authenticates these views itself (API token or session); the site's login redirect
    # would send a terminal to an HTML login page instead of a 401
    return login_not_required(view_class.as_view())
