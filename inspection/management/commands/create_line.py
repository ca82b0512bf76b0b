from django.core.management.base import BaseCommand

from inspection import services
from inspection.models import AutomationLevel, FailSafeAction
from loupe.common.errors import LoupeError
from loupe.common.lookup import as_command_error


class Command(BaseCommand):
    help = "Create a production line with its automation level and thresholds."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--level", choices=AutomationLevel.values, default="human_only")
        parser.add_argument("--accept-threshold", type=float, default=0.2)
        parser.add_argument("--reject-threshold", type=float, default=0.8)
        parser.add_argument("--latency-budget-ms", type=int, default=1000)
        parser.add_argument("--fail-safe", choices=FailSafeAction.values, default="review")
        parser.add_argument("--audit-fraction", type=float, default=0.02)
        parser.add_argument("--classes", default=None, help="comma-separated defect classes")

    def handle(self, *args, **opts):
        try:
            line = services.create_line(
                name=opts["name"],
                level=opts["level"],
                accept_threshold=opts["accept_threshold"],
                reject_threshold=opts["reject_threshold"],
                latency_budget_ms=opts["latency_budget_ms"],
                fail_safe_action=opts["fail_safe"],
                audit_fraction=opts["audit_fraction"],
                defect_classes=opts["classes"].split(",") if opts["classes"] else None,
            )
        except LoupeError as exc:
            raise as_command_error(exc) from exc
        self.stdout.write(
            f"line {line.name} (id {line.pk}): level {line.automation_level}, "
            f"accept <= {line.accept_threshold}, reject >= {line.reject_threshold}"
        )
