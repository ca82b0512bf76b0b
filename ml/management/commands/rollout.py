from django.core.management.base import BaseCommand, CommandError

from inspection import rollouts
from inspection.models import Line, RolloutState
from loupe.common.errors import LoupeError
from loupe.common.lookup import named
from ml import challengers
from ml.models import ModelVersion


class Command(BaseCommand):
    help = (
        "A challenger beside a line's active model: start (mirror, canary or blue_green), "
        "step (the next canary step, or --share), switch (blue-green, both ways), rollback, "
        "stop, promote, status. Every change goes to the line's audit log."
    )

    def add_arguments(self, parser):
        parser.add_argument("line")
        parser.add_argument(
            "action", choices=["start", "step", "switch", "rollback", "stop", "promote", "status"]
        )
        parser.add_argument("version", nargs="?", help="start: the candidate (name or id)")
        parser.add_argument("--mode", choices=["mirror", "canary", "blue_green"], default="canary")
        parser.add_argument("--share", type=float, help="start or step: the challenger's share")
        parser.add_argument("--audit", type=float, default=rollouts.DEFAULT_CHALLENGER_AUDIT)
        parser.add_argument("--reason", default="")

    def handle(self, *args, **opts):
        line = named(Line.objects.all(), opts["line"], kind="line")
        try:
            self._act(line, opts)
        except LoupeError as exc:
            raise CommandError(exc.message) from exc
        current = rollouts.running_rollout(line)
        served = Line.objects.get(pk=line.pk).active_model
        self.stdout.write(
            f"line {line.name}: active {served.name if served else 'none'}; "
            + (
                f"{current.mode} challenger {current.challenger.name} at share {current.share:g}"
                if current
                else "no running rollout"
            )
        )

    def _act(self, line, opts):
        action, reason = opts["action"], opts["reason"]
        if action == "status":
            return
        if action == "start":
            version = self._version(opts["version"])
            share = opts["share"]
            if share is None:
                share = rollouts.CANARY_STEPS[0] if opts["mode"] == "canary" else 0.0
            challengers.start_challenger(
                model_version=version,
                mode=opts["mode"],
                share=share,
                audit_fraction=opts["audit"],
                changed_by="cli",
                reason=reason,
            )
            return
        rollout = rollouts.running_rollout(line)
        if rollout is None:
            raise CommandError(f"line {line.name} has no running rollout")
        if action == "step":
            share = opts["share"]
            if share is None:
                share = rollouts.next_canary_step(rollout.share)
            if share is None:
                raise CommandError("the canary is at 1.0: promote it, or roll it back")
            rollouts.set_rollout_share(
                rollout=rollout, share=share, changed_by="cli", reason=reason
            )
        elif action == "switch":
            rollouts.set_rollout_share(
                rollout=rollout, share=1.0 - rollout.share, changed_by="cli", reason=reason
            )
        elif action == "promote":
            challengers.promote_challenger(rollout=rollout, changed_by="cli", reason=reason)
        else:
            state = RolloutState.ROLLED_BACK if action == "rollback" else RolloutState.STOPPED
            rollouts.end_rollout(rollout=rollout, state=state, changed_by="cli", reason=reason)

    def _version(self, key: str | None) -> ModelVersion:
        if not key:
            raise CommandError("start needs the candidate's name or id")
        version = ModelVersion.objects.filter(name=key).first()
        if version is None and key.isdigit():
            version = ModelVersion.objects.filter(pk=int(key)).first()
        if version is None:
            raise CommandError(f"no model version {key!r}")
        return version
