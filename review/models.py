from django.conf import settings
from django.db import models

from inspection.models import Outcome, ReviewItem


class ReviewAction(models.TextChoices):
    DECIDED = "decided", "Decided"
    UNDONE = "undone", "Undone"
    RELEASED = "released", "Released"


class ReviewEvent(models.Model):
    """What happened to a review item, in order: the review history shown on an inspection.

    A decision that is undone stays here; only ReviewItem and Decision hold the current state.
    """

    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="events")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=10, choices=ReviewAction.choices)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, blank=True)
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.action} {self.outcome} on item {self.item_id} by {self.user_id}"
