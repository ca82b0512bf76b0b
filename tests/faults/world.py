"""Run in a subprocess against a fault test's own PostgreSQL: the line, its model, stations.

`python -m tests.faults.world ARTIFACT STATIONS BUDGET_MS` prints {"tokens": [...]} as JSON.
The line is fully automated, so every item the model judges is decided by it and every
other outcome is the fail-safe's.
"""

import json
import shutil
import sys
from pathlib import Path


def main() -> None:
    import django

    django.setup()
    from django.conf import settings

    from inspection import services
    from ml.services import register_model_version, set_active_version

    artifact, stations, budget_ms = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    target = Path(settings.LOUPE_MODEL_DIR) / "faults.pt"
    shutil.copy(artifact, target)
    model = register_model_version(artifact=target, name="faults")
    line = services.create_line(
        name="faults-line",
        level="full",
        latency_budget_ms=budget_ms,
        audit_fraction=0.0,
    )
    set_active_version(line=line, model_version=model, changed_by="fault suite")
    tokens = [services.create_station(line=line, name=f"cam-{i}")[1] for i in range(stations)]
    print(json.dumps({"tokens": tokens}))


if __name__ == "__main__":
    main()
