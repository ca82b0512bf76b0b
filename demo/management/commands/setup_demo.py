import logging
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.services import create_user
from demo import first_model
from inspection import services, submission
from inspection.images import validate_image
from inspection.models import Line, Station
from loupe.common.errors import LoupeError
from ml.services import describe_metrics, set_active_version

DEMO_LINE = "demo-line"
DEMO_STATION = "demo-cam"
DEMO_DATASET = "demo-line-labels"
SHADOW_LINE = "shadow-line"
SHADOW_STATION = "shadow-cam"
# (user name, password, role); the demo's logins, printed by scripts/demo.sh
DEMO_USERS = (
    ("admin", "loupe-admin", "admin"),
    ("inspector", "loupe-review-shift", "inspector"),
    ("supervisor", "loupe-line-lead", "supervisor"),
    ("data", "loupe-data-team", "data_team"),
)


class Command(BaseCommand):
    help = (
        "Create (or refresh) the demo: a partial-automation line whose labeled data the data "
        "team imported from DATA_DIR and froze as a dataset version, its first model trained "
        "from that version by the retraining pipeline, a station whose new token is written to "
        "TOKEN_FILE, and demo users. Safe to repeat."
    )

    def add_arguments(self, parser):
        parser.add_argument("data_dir", type=Path, help="images written by generate_images")
        parser.add_argument("--token-file", type=Path, required=True)
        parser.add_argument(
            "--seed-images",
            type=Path,
            help="a generate_images folder whose images the shadow line's camera posts once, "
            "so inspectors have a queue and supervisors have agreement figures",
        )

    def handle(self, *args, **opts):
        # tasks run in this process when embedded; each would log a line
        logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
        line = Line.objects.filter(name=DEMO_LINE).first() or services.create_line(
            name=DEMO_LINE,
            level="partial",
            accept_threshold=0.2,
            reject_threshold=0.8,
            latency_budget_ms=2000,
        )
        shadow = Line.objects.filter(name=SHADOW_LINE).first() or services.create_line(
            name=SHADOW_LINE, level="shadow", latency_budget_ms=5000
        )
        users = self._users()
        if line.active_model is None:
            try:
                self._first_model(line, opts["data_dir"], users)
            except (first_model.DemoSetupFailed, LoupeError) as error:
                raise CommandError(str(error)) from error
            line.refresh_from_db()
        self.stdout.write(
            f"line {line.name}: level {line.automation_level}, model {line.active_model.name}: "
            + describe_metrics(line.active_model.metrics)
        )
        # Tokens are kept only as hashes, so each run issues the demo station a fresh one.
        station = Station.objects.filter(line=line, name=DEMO_STATION).first()
        if station is None:
            station, token = services.create_station(line=line, name=DEMO_STATION)
        else:
            token = services.rotate_station_token(station=station, changed_by="setup_demo")
        opts["token_file"].parent.mkdir(parents=True, exist_ok=True)
        opts["token_file"].write_text(token + "\n")
        opts["token_file"].chmod(0o600)

        if shadow.active_model is None:
            set_active_version(
                line=shadow, model_version=line.active_model, changed_by="setup_demo"
            )
        if opts["seed_images"] and not shadow.inspections.exists():
            self._seed(shadow, opts["seed_images"])
        self.stdout.write(f"station {station.name}: token written to {opts['token_file']}")

    def _users(self) -> dict:
        users = get_user_model().objects
        for username, password, role in DEMO_USERS:
            if not users.filter(username=username).exists():
                lines = [] if role == "admin" else [DEMO_LINE, SHADOW_LINE]
                create_user(
                    username=username,
                    role=role,
                    line_names=lines,
                    password=password,
                    changed_by="setup_demo",
                )
        return {user.username: user for user in users.filter(username__in=["data", "supervisor"])}

    def _first_model(self, line, data_dir: Path, users: dict) -> None:
        """As the demo's users would: the data team imports the generated images and freezes
        them; the supervisor trains the first model from that version and promotes it."""
        data = users["data"]
        self.stdout.write(f"importing {data_dir} as {line.name}'s labeled data (as {data})...")
        record = first_model.import_labeled_images(line=line, folder=data_dir, user=data)
        self.stdout.write(f"  {record.created_count} labeled inspections imported")
        version = first_model.freeze_line(line=line, user=data, name=DEMO_DATASET)
        self.stdout.write(
            f"dataset version {version.name}: {version.item_count} images, "
            f"hash {version.version_hash[:12]}"
        )
        self.stdout.write(
            f"training the first model from {version.name} with the retraining pipeline "
            "(at most three minutes of training)..."
        )
        model, steps = first_model.train_first_model(
            line=line, dataset_version=version, supervisor=users["supervisor"]
        )
        self.stdout.write(steps)
        self.stdout.write(f"{model.name} promoted on {line.name} by {users['supervisor']}")

    def _seed(self, line, folder: Path):
        station = Station.objects.filter(line=line, name=SHADOW_STATION).first()
        if station is None:
            station, _ = services.create_station(line=line, name=SHADOW_STATION)
        images = sorted((folder / "images").glob("*.png"))
        for path in images:
            image = validate_image(
                path.read_bytes(),
                max_bytes=settings.LOUPE_MAX_IMAGE_BYTES,
                max_pixels=settings.LOUPE_MAX_IMAGE_PIXELS,
            )
            submission.submit_inspection(
                station=station, external_id=path.stem, image=image, metadata={"demo": True}
            )
        self.stdout.write(f"line {line.name}: {len(images)} items posted, waiting for review")
