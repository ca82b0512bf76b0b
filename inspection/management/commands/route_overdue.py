from django.core.management.base import BaseCommand

from inspection.decisions import route_overdue_inspections


class Command(BaseCommand):
    help = (
        "Give the line's fail-safe to items still unrouted 30 s past their latency budget (their "
        "request died before routing them). Inference workers do this when they start; run it "
        "from cron every minute or so."
    )

    def handle(self, *args, **opts):
        self.stdout.write(f"routed {route_overdue_inspections()} overdue items to the fail-safe")
