from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from inspection import services
from inspection.models import Line, Station
from ml.services import describe_metrics, train_and_register_model

DEMO_LINE = "demo-line"
DEMO_STATION = "demo-cam"
DEMO_USERS = (("admin", "loupe-admin", True), ("inspector", "loupe-inspector", False))


class Command(BaseCommand):
    help = (
        "Create (or refresh) the demo: a partial-automation line with a trained, active model, "
        "a station whose new token is written to TOKEN_FILE, and demo users. Safe to repeat."
    )

    def add_arguments(self, parser):
        parser.add_argument("data_dir", type=Path, help="images written by generate_images")
        parser.add_argument("--token-file", type=Path, required=True)

    def handle(self, *args, **opts):
        line = Line.objects.filter(name=DEMO_LINE).first() or services.create_line(
            name=DEMO_LINE,
            level="partial",
            accept_threshold=0.2,
            reject_threshold=0.8,
            latency_budget_ms=2000,
        )
        if line.active_model is None:
            self.stdout.write("training the first model (about two minutes on two cores)...")
            version = train_and_register_model(
                data_dir=opts["data_dir"], log=lambda text: self.stdout.write(f"  {text}")
            )
            services.activate_model(line=line, model_version=version, changed_by="setup_demo")
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
            token = services.rotate_station_token(station=station)
        opts["token_file"].parent.mkdir(parents=True, exist_ok=True)
        opts["token_file"].write_text(token + "\n")
        opts["token_file"].chmod(0o600)

        users = get_user_model().objects
        for username, password, is_admin in DEMO_USERS:
            if not users.filter(username=username).exists():
                if is_admin:
                    users.create_superuser(username, password=password)
                else:
                    users.create_user(username, password=password)
        self.stdout.write(f"station {station.name}: token written to {opts['token_file']}")
