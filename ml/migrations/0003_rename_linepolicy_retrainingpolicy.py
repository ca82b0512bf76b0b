"""LinePolicy is the line's retraining policy (the routing policy is on the line itself); a
line that retrained cannot be deleted."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("ml", "0002_registry_and_pipeline"),
        ("inspection", "0004_decision_final_at_reviewitem_inspector"),
    ]

    operations = [
        migrations.RenameModel(old_name="LinePolicy", new_name="RetrainingPolicy"),
        migrations.AlterModelOptions(
            name="retrainingpolicy",
            options={"verbose_name_plural": "retraining policies"},
        ),
        migrations.AlterField(
            model_name="pipelinerun",
            name="line",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="pipeline_runs",
                to="inspection.line",
            ),
        ),
    ]
