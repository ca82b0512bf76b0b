from pathlib import Path

from django.core.management.base import BaseCommand, CommandError


def parse_mix(text: str) -> tuple[tuple[str, float], ...]:
    from ml.engine.generator import ALL_CLASSES

    mix = []
    for part in text.split(","):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in ALL_CLASSES:
            raise CommandError(f"unknown defect class {name!r}; known: {', '.join(ALL_CLASSES)}")
        try:
            mix.append((name, float(weight) if weight else 1.0))
        except ValueError:
            raise CommandError(f"weight of {name} must be a number, got {weight!r}") from None
    return tuple(mix)


class Command(BaseCommand):
    help = (
        "Render synthetic product-surface images with defects into OUT_DIR/images/ and their "
        "boxes into OUT_DIR/annotations.json (COCO; an image without annotations is defect-free)."
    )

    def add_arguments(self, parser):
        parser.add_argument("out_dir", type=Path)
        parser.add_argument("--count", type=int, default=1000)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--size", type=int, default=128, help="image side in pixels")
        parser.add_argument("--surface", choices=["metal", "phone", "mixed"], default="mixed")
        parser.add_argument("--defect-rate", type=float, default=0.5)
        parser.add_argument(
            "--defect-mix",
            type=parse_mix,
            default=None,
            help="relative weights, e.g. scratch=1,dent=1,spot=0.5,crack=0 (drift: new defects); "
            "discoloration is drawn only when named here",
        )
        parser.add_argument("--lighting", type=float, default=1.0, help="brightness multiplier")
        parser.add_argument("--lighting-gradient", type=float, default=0.3)
        parser.add_argument("--blur", type=float, default=0.0, help="gaussian blur sigma, px")
        parser.add_argument("--noise", type=float, default=0.02, help="sensor noise std, 0..1")

    def handle(self, *args, **opts):
        from ml.engine.generator import SurfaceConfig, generate_dataset

        if opts["count"] < 1:
            raise CommandError("--count must be at least 1")
        if not 0.0 <= opts["defect_rate"] <= 1.0:
            raise CommandError("--defect-rate must be between 0 and 1")
        fields = dict(
            size=opts["size"],
            surface=opts["surface"],
            lighting=opts["lighting"],
            lighting_gradient=opts["lighting_gradient"],
            blur=opts["blur"],
            noise=opts["noise"],
            defect_rate=opts["defect_rate"],
        )
        if opts["defect_mix"]:
            fields["defect_mix"] = opts["defect_mix"]
        step = max(1, opts["count"] // 10)

        def progress(done: int, total: int) -> None:
            if done % step == 0 or done == total:
                self.stdout.write(f"  {done}/{total} images")

        path = generate_dataset(
            opts["out_dir"],
            count=opts["count"],
            seed=opts["seed"],
            config=SurfaceConfig(**fields),
            progress=progress,
        )
        self.stdout.write(self.style.SUCCESS(f"wrote {opts['count']} images and {path}"))
