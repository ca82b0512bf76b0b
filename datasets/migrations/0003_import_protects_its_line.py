"""An import is the record of where a line's labeled items came from: it protects the line."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("datasets", "0002_export_removed_at"),
        ("inspection", "0004_decision_final_at_reviewitem_inspector"),
    ]

    operations = [
        migrations.AlterField(
            model_name="datasetimport",
            name="line",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="inspection.line",
            ),
        ),
    ]
