"""A new model rolled out on a line as production ML does it: `manage.py demo_rollout`.

The line runs at full automation on its incumbent model with a 2% audit, first alone for
`history_items` items (the days before a rollout, whose audits the gate compares with too).
Three challengers, each trained here on the same generated images, are then put beside it:

1. flipped: the incumbent trained on further, on flipped labels (good called defective and the
   reverse; from scratch, flipped image-level labels alone teach the small network nothing and
   it answers about 0.5 for every item), started as a canary at 5% with no mirror phase. Its
   decisions are audited at the rollout's 20%; the gate (monitoring.rollout_gate, run every
   `check_every` items as beat would run it every minute) must roll it back by itself;
2. blind: trained with every scratch labeled as nothing, so it ships most items whose only
   defects are scratches (about one defective item in six) and is right on the rest; a 25%
   canary (at 5% it takes some 7,000 items to catch), the same gate;
3. green: a good model trained with another seed, put beside the incumbent blue-green. While
   items are posted one after another through the station API (the request path a camera
   uses: token, image checks, prediction, routing), the supervisor switches every
   `switch_every` items, both ways, and at the end leaves green serving and promotes it. A
   failed request is a non-2xx answer, a fail-safe, or an answer over the line's budget.

Every item is posted with a serial; the inspector decides every audit and review item with
the generator's truth, and labels the boxes of each defective one (so the report has per-class
figures). Figures come from what happened to the items, not from the gate's own
account: how many items each challenger decided before its rollback, and the share of items
the canary's draw gave the challenger.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

ROLLOUT_PASSWORD = "rollout-demo-password-1"


@dataclass(frozen=True)
class RolloutSettings:
    line_name: str = "rollout-line"
    seed: int = 11
    image_size: int = 64
    train_images: int = 1200
    epochs: int = 24
    flipped_epochs: int = 6
    history_items: int = 1000
    audit_fraction: float = 0.02
    challenger_audit: float = 0.2
    canary_share: float = 0.05
    # the blind challenger is wrong on about one defective item in six: at a 5% canary it
    # takes some 7,000 items to catch; at 25%, a quarter of that
    blind_share: float = 0.25
    blind_class: str = "scratch"
    flipped_max_items: int = 3000
    blind_max_items: int = 4000
    check_every: int = 10
    switch_items: int = 240
    switch_every: int = 40
    accept_threshold: float = 0.2
    reject_threshold: float = 0.4
    latency_budget_ms: int = 2000


@dataclass
class ChallengerPhase:
    name: str
    items: int = 0
    decided_by_challenger: int = 0
    rolled_back: bool = False
    reason: str = ""
    seconds: float = 0.0


class _Demo:
    def __init__(self, s: RolloutSettings, work_dir: Path, out: Callable[[str], None]):
        self.s, self.work_dir, self.out = s, work_dir, out
        self.truth: dict = {}  # external_id -> the generated sample

    # -- setting up -----------------------------------------------------------------------
    def generate(self, name: str, count: int, seed: int) -> list:
        from ml.engine.dataset import load_coco_folder
        from ml.engine.generator import SurfaceConfig, generate_dataset

        folder = self.work_dir / name
        if not (folder / "annotations.json").exists():
            generate_dataset(
                folder, count=count, seed=seed, config=SurfaceConfig(self.s.image_size)
            )
        return load_coco_folder(folder)

    def train(self, name: str, samples: list, *, seed: int, init=None, epochs=None):
        """Train a model on `samples` (from scratch, or on from the version `init`), register
        it as a candidate of the line."""
        from django.conf import settings as django_settings

        from ml import services
        from ml.engine.artifact import load_artifact
        from ml.engine.train import TrainConfig, fit, save_model

        started = time.monotonic()
        config = TrainConfig(
            epochs=epochs or self.s.epochs, input_size=self.s.image_size, seed=seed
        )
        start = None if init is None else load_artifact(init.artifact_file)
        model = fit(samples, config=config, init=start, extra_classes=(self.s.blind_class,))
        folder = Path(django_settings.LOUPE_MODEL_DIR)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.s.line_name}-{name}.pt"
        save_model(model, path, metrics={})
        version = services.register_model_version(
            artifact=path, name=f"{self.s.line_name}-{name}", line=self.line,
            training_data=f"{len(samples)} generated images, {name} labels",
        )  # fmt: skip
        self.out(f"  {version.name}: trained in {time.monotonic() - started:.0f} s")
        return version

    def set_up(self) -> None:
        from accounts.services import create_user
        from inspection import services as inspection_services
        from ml import services
        from ml.engine.dataset import LabeledImage

        s = self.s
        self.line = inspection_services.create_line(
            name=s.line_name, level="full", accept_threshold=s.accept_threshold,
            reject_threshold=s.reject_threshold, audit_fraction=s.audit_fraction,
            latency_budget_ms=s.latency_budget_ms,
        )  # fmt: skip
        self.station, self.token = inspection_services.create_station(line=self.line, name="cam-1")
        self.inspector, self.supervisor = (
            create_user(
                username=f"{s.line_name}-{role}",
                role=role,
                line_names=[self.line.name],
                password=ROLLOUT_PASSWORD,
            )  # fmt: skip
            for role in ("inspector", "supervisor")
        )
        samples = self.generate("train", s.train_images, seed=s.seed)
        self.out(f"training four models on {len(samples)} generated images ({s.image_size} px)")
        flipped = [
            LabeledImage(x.path, x.width, x.height, (), defective=not x.is_defective)
            for x in samples
        ]
        blind = []
        for x in samples:
            kept = tuple(box for box in x.boxes if box.label != s.blind_class)
            blind.append(replace(x, boxes=kept, defective=bool(kept)))
        self.incumbent = self.train("incumbent", samples, seed=s.seed)
        services.promote_model_version(
            model_version=self.incumbent, changed_by=self.supervisor.username,
            expected_active=None, reason="the line's first model",
        )  # fmt: skip
        self.flipped = self.train(
            "flipped", flipped, seed=s.seed, init=self.incumbent, epochs=s.flipped_epochs
        )
        self.blind = self.train("blind", blind, seed=s.seed)
        self.green = self.train("green", samples, seed=s.seed + 1)

    # -- playing items ----------------------------------------------------------------------
    def post(self, sample, external_id: str):
        from demo.loop_scenario import _validated
        from inspection.models import Station
        from inspection.submission import submit_inspection

        self.truth[external_id] = sample
        station = Station.objects.select_related("line").get(pk=self.station.pk)
        inspection, _ = submit_inspection(
            station=station, external_id=external_id, image=_validated(sample.path), metadata={}
        )
        self.work_the_queue()
        return inspection

    def work_the_queue(self) -> None:
        from demo.loop_scenario import truth_of
        from inspection.selectors import visible_review_items
        from labeling.services import save_annotation
        from review import services as review

        while True:
            item = review.claim_next_item(
                user=self.inspector, items=visible_review_items(self.inspector)
            )
            if item is None:
                return
            sample = self.truth[item.inspection.external_id]
            review.decide_review_item(
                item=item, inspector=self.inspector,
                outcome="reject" if sample.is_defective else "accept", time_spent_ms=1500,
            )  # fmt: skip
            if sample.is_defective:
                image_label, boxes = truth_of(sample)
                save_annotation(
                    inspection=item.inspection, author=self.inspector,
                    image_label=image_label, boxes=boxes,
                )  # fmt: skip

    def canary(
        self, name: str, challenger, samples: list, max_items: int, share: float
    ) -> ChallengerPhase:
        """Start `challenger` as a canary and post items until the gate rolls it back."""
        from inspection.models import Inspection, RolloutState
        from ml import challengers
        from monitoring.rollout_gate import check_rollouts

        phase, started = ChallengerPhase(name), time.monotonic()
        rollout = challengers.start_challenger(
            model_version=challenger, mode="canary", share=share,
            audit_fraction=self.s.challenger_audit, changed_by=self.supervisor.username,
            reason=f"demo: the {name} challenger, no mirror phase",
        )  # fmt: skip
        self.out(f"{name}: canary at {share:.0%}, audited at {self.s.challenger_audit:.0%}")
        for index, sample in enumerate(samples[:max_items]):
            self.post(sample, f"{name}-{index}")
            phase.items += 1
            if phase.items % self.s.check_every == 0:
                check_rollouts()
                rollout.refresh_from_db()
                if rollout.state != RolloutState.RUNNING:
                    break
        rollout.refresh_from_db()
        phase.decided_by_challenger = Inspection.objects.filter(
            rollout=rollout, serving_model=challenger
        ).count()
        phase.rolled_back = rollout.state == RolloutState.ROLLED_BACK
        phase.reason = rollout.ended_reason
        phase.seconds = time.monotonic() - started
        self.out(
            f"  {phase.items} items, {phase.decided_by_challenger} decided by {challenger.name}; "
            + (f"rolled back: {phase.reason}" if phase.rolled_back else "NOT rolled back")
        )
        return phase

    def blue_green(self, samples: list) -> dict:
        """Post items through the station API while the supervisor switches both ways."""
        from django.test import Client

        from inspection import rollouts
        from ml import challengers

        s = self.s
        rollout = challengers.start_challenger(
            model_version=self.green, mode="blue_green", share=0.0,
            changed_by=self.supervisor.username, reason="demo: blue-green",
        )  # fmt: skip
        client = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Bearer {self.token}")
        failed, answered_by, switches, slowest = [], {}, 0, 0.0
        for index, sample in enumerate(samples[: s.switch_items]):
            if index and index % s.switch_every == 0:
                rollout = rollouts.set_rollout_share(
                    rollout=rollout, share=1.0 - rollout.share,
                    changed_by=self.supervisor.username, reason="demo: switch",
                )  # fmt: skip
                switches += 1
            external_id = f"switch-{index}"
            self.truth[external_id] = sample
            started = time.perf_counter()
            with sample.path.open("rb") as image:
                response = client.post(
                    "/api/v1/inspections/", {"external_id": external_id, "image": image}
                )
            ms = 1000 * (time.perf_counter() - started)
            slowest = max(slowest, ms)
            body = response.json()
            if (
                response.status_code not in (200, 201)
                or body.get("fail_safe_reason")
                or ms > s.latency_budget_ms
            ):
                failed.append({"item": external_id, "status": response.status_code, "ms": ms})
            answered_by[body.get("model_version")] = (
                answered_by.get(body.get("model_version"), 0) + 1
            )
            self.work_the_queue()
        if rollout.share == 0.0:
            rollout = rollouts.set_rollout_share(
                rollout=rollout, share=1.0, changed_by=self.supervisor.username,
                reason="demo: green takes every item",
            )  # fmt: skip
            switches += 1
        challengers.promote_challenger(
            rollout=rollout, changed_by=self.supervisor.username, reason="demo: green serves"
        )
        self.out(
            f"blue-green: {s.switch_items} items, {switches} switches, {len(failed)} failed, "
            f"answered by {answered_by}, slowest answer {slowest:.0f} ms"
        )
        return {"failed": failed, "switches": switches, "answered_by": answered_by}


def run_rollout_demo(
    *,
    work_dir: Path,
    settings: RolloutSettings = RolloutSettings(),  # noqa: B008 - frozen, so sharing it is safe
    out: Callable[[str], None] = print,
) -> dict:
    """Play the module docstring's scenario; the summary the command prints last."""
    from inspection.models import Inspection

    s = settings
    started = time.monotonic()
    demo = _Demo(s, Path(work_dir), out)
    demo.set_up()
    setup_s = time.monotonic() - started
    stream = demo.generate("items", s.blind_max_items + s.flipped_max_items, seed=s.seed + 7)
    history = demo.generate("history", s.history_items, seed=s.seed + 6)
    for index, sample in enumerate(history):
        demo.post(sample, f"history-{index}")
    out(f"history: {len(history)} items decided by {demo.incumbent.name} alone, 2% audited")
    flipped = demo.canary("flipped", demo.flipped, stream, s.flipped_max_items, s.canary_share)
    blind = demo.canary(
        "blind", demo.blind, stream[flipped.items :], s.blind_max_items, s.blind_share
    )
    switch = demo.blue_green(demo.generate("switch", s.switch_items, seed=s.seed + 8))
    # the share is measured where it was set: the flipped challenger's canary
    canary_items = Inspection.objects.filter(line=demo.line, rollout__challenger=demo.flipped)
    measured = canary_items.filter(serving_model__isnull=False).count() / max(
        1, canary_items.count()
    )
    return {
        "canary_share_set": s.canary_share,
        "canary_share_measured": round(measured, 4),
        "canary_items": canary_items.count(),
        "bad_challenger_items_decided": flipped.decided_by_challenger,
        "rolled_back": flipped.rolled_back,
        "subtle_challenger_share": s.blind_share,
        "subtle_challenger_items_decided": blind.decided_by_challenger,
        "subtle_rolled_back": blind.rolled_back,
        "switch_failed_requests": len(switch["failed"]),
        "switches": switch["switches"],
        "seconds": {
            "setup": round(setup_s),
            "flipped": round(flipped.seconds),
            "blind": round(blind.seconds),
            "total": round(time.monotonic() - started),
        },
    }


def summary_line(summary: dict) -> str:
    return json.dumps(summary)
