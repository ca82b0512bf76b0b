"""A decision's stored final_at; ReviewItem.decided_by (a user) renamed inspector; the audit
log protects its line."""

from datetime import timedelta

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import F, Q


def backfill_final_at(apps, schema_editor):
    """What the serializer used to work out on each read: a human's decision became final at
    the end of the undo window, every other decision when it was taken."""
    Decision = apps.get_model("inspection", "Decision")
    window = timedelta(seconds=settings.LOUPE_UNDO_WINDOW_S)
    Decision.objects.exclude(decided_by="human").update(final_at=F("decided_at"))
    Decision.objects.filter(decided_by="human").update(final_at=F("decided_at") + window)


class Migration(migrations.Migration):
    dependencies = [
        ("inspection", "0003_unrouted_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="decision",
            name="final_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.RunPython(backfill_final_at, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="decision",
            name="final_at",
            field=models.DateTimeField(db_index=True),
        ),
        migrations.AddConstraint(
            model_name="decision",
            constraint=models.CheckConstraint(
                condition=Q(final_at__gte=F("decided_at")),
                name="decision_final_not_before_decided",
            ),
        ),
        migrations.RenameField(
            model_name="reviewitem", old_name="decided_by", new_name="inspector"
        ),
        migrations.AlterField(
            model_name="reviewitem",
            name="inspector",
            field=models.ForeignKey(
                blank=True,
                help_text="Who decided it (Decision.decided_by says model, human or fail-safe).",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="linechange",
            name="line",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="changes",
                to="inspection.line",
            ),
        ),
    ]
