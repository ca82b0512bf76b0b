"""The line's audit log (LineChange): who changed what, from what, to what, and why.

Every change to what a line serves passes here (the active model, a rollout, the level), so
this is also where the serving processes are told of it (inspection.serving_news).
"""

from typing import Any

from inspection import serving_news
from inspection.models import Line, LineChange


def record_line_change(
    line: Line, field: str, old: Any, new: Any, changed_by: str, reason: str = ""
) -> None:
    LineChange.objects.create(
        line=line,
        field=field,
        old_value="" if old is None else str(old)[:200],
        new_value="" if new is None else str(new)[:200],
        changed_by=changed_by,
        reason=reason,
    )
    if field in serving_news.SERVING_FIELDS:
        serving_news.announce_change()
