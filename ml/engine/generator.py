"""Synthetic inspection images: brushed metal or phone backs with labelled surface defects.

All randomness comes from the generator passed in, so a seed and a config fix every pixel.
Defects are drawn into the surface reflectance before lighting, blur and sensor noise, as a
camera would see them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .types import Region

DEFECT_CLASSES = ("scratch", "dent", "spot", "crack")
# drawn only when a defect_mix asks for them: unlike the local marks above, a model trained on
# DEFECT_CLASSES has never seen anything like them (the data loop's "new defect type")
OPT_IN_CLASSES = ("discoloration",)
ALL_CLASSES = DEFECT_CLASSES + OPT_IN_CLASSES
SURFACES = ("metal", "phone", "mixed")
GENERATOR_VERSION = 1
BOX_MARGIN = 2  # pixels

_PHONE_COLORS = np.array(
    [
        (0.07, 0.07, 0.08),  # black
        (0.90, 0.90, 0.88),  # white
        (0.12, 0.17, 0.30),  # navy
        (0.86, 0.70, 0.64),  # rose gold
        (0.30, 0.44, 0.37),  # green
        (0.72, 0.73, 0.75),  # silver
        (0.45, 0.38, 0.55),  # purple
        (0.60, 0.10, 0.12),  # red
    ],
    dtype=np.float32,
)
_STAIN_COLORS = np.array(
    [
        (0.45, 0.26, 0.10),  # rust
        (0.25, 0.33, 0.18),  # grime
        (0.10, 0.10, 0.24),  # ink
        (0.05, 0.05, 0.05),  # soot
        (0.93, 0.92, 0.88),  # dried residue
    ],
    dtype=np.float32,
)


@dataclass(frozen=True)
class SurfaceConfig:
    size: int = 128
    surface: str = "mixed"
    lighting: float = 1.0
    lighting_gradient: float = 0.3
    blur: float = 0.0
    noise: float = 0.02
    defect_rate: float = 0.5
    defect_mix: tuple[tuple[str, float], ...] = (
        ("scratch", 1.0),
        ("dent", 1.0),
        ("spot", 1.0),
        ("crack", 1.0),
    )
    max_defects: int = 2

    def __post_init__(self) -> None:
        if self.size < 32:
            raise ValueError(f"size must be at least 32 pixels, got {self.size}")
        if self.surface not in SURFACES:
            raise ValueError(f"surface must be one of {SURFACES}, got {self.surface!r}")
        if self.lighting <= 0 or self.lighting_gradient < 0 or self.lighting_gradient > 1:
            raise ValueError("lighting must be > 0 and lighting_gradient within 0..1")
        if self.blur < 0 or self.noise < 0:
            raise ValueError("blur and noise must not be negative")
        if not 0.0 <= self.defect_rate <= 1.0:
            raise ValueError(f"defect_rate must be within 0..1, got {self.defect_rate}")
        if self.max_defects < 1:
            raise ValueError(f"max_defects must be at least 1, got {self.max_defects}")
        for name, weight in self.defect_mix:
            if name not in ALL_CLASSES:
                raise ValueError(f"unknown defect class {name!r} in defect_mix")
            if weight < 0:
                raise ValueError(f"defect_mix weight for {name!r} is negative")
        if self.defect_rate > 0 and sum(w for _, w in self.defect_mix) <= 0:
            raise ValueError("defect_mix gives no class a positive weight")


def render_surface(
    rng: np.random.Generator, config: SurfaceConfig
) -> tuple[Image.Image, tuple[Region, ...]]:
    size = config.size
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5  # pixel centres
    surface = config.surface
    if surface == "mixed":
        surface = "metal" if rng.random() < 0.5 else "phone"
    if surface == "metal":
        img = _metal(rng, size, xs, ys)
    else:
        img = _phone(rng, size, xs, ys)

    regions: list[Region] = []
    if rng.random() < config.defect_rate:
        names = [n for n, w in config.defect_mix if w > 0]
        weights = np.array([w for n, w in config.defect_mix if w > 0], dtype=np.float64)
        light = rng.uniform(0, 2 * math.pi)  # one light direction shades all dents alike
        for _ in range(int(rng.integers(1, config.max_defects + 1))):
            name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
            box = _DRAW[name](img, rng, size, xs, ys, light)
            if box is not None:
                regions.append(Region(*box, label=name, score=1.0))

    img *= config.lighting * _light_falloff(rng, size, xs, ys, config.lighting_gradient)
    if config.blur > 0:
        img = _gaussian_blur(img, config.blur)
    if config.noise > 0:
        img = img + rng.normal(0.0, config.noise, img.shape).astype(np.float32)
    pixels = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB"), tuple(regions)


def generate_dataset(
    out_dir: Path,
    *,
    count: int,
    seed: int,
    config: SurfaceConfig = SurfaceConfig(),  # noqa: B008 - frozen, so sharing it is safe
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write `count` images and a COCO annotations.json; return the annotations path.

    file_name in the COCO file is relative to out_dir ("images/00000.png"). Image i depends
    only on (seed, i), so a larger count extends a smaller one. annotations.json is written
    last, so an interrupted run leaves no loadable dataset behind.
    """
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    # opt-in classes are listed only when drawn, so the default file keeps its four categories
    drawn = {name for name, weight in config.defect_mix if weight > 0}
    listed = DEFECT_CLASSES + tuple(n for n in OPT_IN_CLASSES if n in drawn)
    class_ids = {name: i + 1 for i, name in enumerate(listed)}
    images, annotations = [], []
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        image, regions = render_surface(rng, config)
        file_name = f"images/{index:05d}.png"
        image.save(out_dir / file_name)
        images.append(
            {"id": index + 1, "file_name": file_name, "width": image.width, "height": image.height}
        )
        for region in regions:
            w, h = region.x1 - region.x0, region.y1 - region.y0
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index + 1,
                    "category_id": class_ids[region.label],
                    "bbox": [region.x0, region.y0, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
        if progress is not None:
            progress(index + 1, count)
    info = {
        "description": "Loupe synthetic surface defects",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "count": count,
        "config": asdict(config),
    }
    coco = {
        "info": info,
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n} for n, i in class_ids.items()],
    }
    path = out_dir / "annotations.json"
    path.write_text(json.dumps(coco, indent=1))
    return path


def _noise1d(rng: np.random.Generator, coord: np.ndarray, scale: float) -> np.ndarray:
    lo = float(coord.min())
    knots = rng.normal(0.0, 1.0, int((float(coord.max()) - lo) / scale) + 3)
    flat = np.interp((coord.ravel() - lo) / scale, np.arange(knots.size), knots)
    return flat.reshape(coord.shape).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    coarse = rng.normal(0.0, 1.0, (cells + 1, cells + 1)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BILINEAR))


def _metal(rng: np.random.Generator, size: int, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    gray = rng.uniform(0.42, 0.72)
    base = gray * (1.0 + rng.normal(0.0, 0.03, 3)).astype(np.float32)
    theta = rng.uniform(0, math.pi)
    along = xs * math.cos(theta) + ys * math.sin(theta)
    across = -xs * math.sin(theta) + ys * math.cos(theta)
    # a slow wobble keeps the brushing from looking ruled
    across = across + rng.uniform(0.3, 1.5) * np.sin(
        along * rng.uniform(0.02, 0.06) + rng.uniform(0, 6.3)
    )
    texture = (
        rng.uniform(0.015, 0.04) * _noise1d(rng, across, 0.7)
        + rng.uniform(0.01, 0.03) * _noise1d(rng, across, rng.uniform(3.0, 8.0))
        + 0.025 * _smooth_noise(rng, size, 4)
    )
    return base[None, None, :] * (1.0 + texture[..., None])


def _phone(rng: np.random.Generator, size: int, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    base = _PHONE_COLORS[rng.integers(len(_PHONE_COLORS))] * (1.0 + rng.normal(0.0, 0.05, 3))
    img = np.empty((size, size, 3), np.float32)
    img[:] = np.clip(base, 0.02, 0.95)
    phi = rng.uniform(0, math.pi)
    band = xs * math.cos(phi) + ys * math.sin(phi) - rng.uniform(0, 1.4 * size)
    width = rng.uniform(0.15, 0.4) * size
    sheen = rng.uniform(0.02, 0.1) * np.exp(-(band**2) / (2 * width**2))
    img += (sheen + 0.01 * _smooth_noise(rng, size, 3))[..., None]
    if rng.random() < 0.45:
        _camera_bump(img, rng, size, xs, ys)
    if rng.random() < 0.35:
        cx, cy = rng.uniform(0.3, 0.7, 2) * size
        radius = rng.uniform(0.05, 0.1) * size
        dist = np.hypot(xs - cx, ys - cy)
        if rng.random() < 0.5:
            logo = np.clip(radius - dist + 0.5, 0, 1)
        else:
            logo = np.exp(-((dist - radius) ** 2) / 2.0)
        img *= 1.0 + rng.choice([-1.0, 1.0]) * rng.uniform(0.03, 0.07) * logo[..., None]
    return img


def _camera_bump(
    img: np.ndarray, rng: np.random.Generator, size: int, xs: np.ndarray, ys: np.ndarray
) -> None:
    half = rng.uniform(0.13, 0.22, 2) * size
    margin = rng.uniform(0.03, 0.08) * size
    corner = rng.integers(2, size=2)
    cx = margin + half[0] if corner[0] == 0 else size - margin - half[0]
    cy = margin + half[1] if corner[1] == 0 else size - margin - half[1]
    rounding = 0.45 * float(half.min())
    qx = np.abs(xs - cx) - half[0] + rounding
    qy = np.abs(ys - cy) - half[1] + rounding
    signed = (
        np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
        + np.minimum(np.maximum(qx, qy), 0)
        - rounding
    )
    inside = np.clip(0.5 - signed, 0, 1)[..., None]
    img *= 1.0 + inside * rng.uniform(-0.15, 0.1)
    img += (0.12 * np.exp(-(signed**2) / 1.5))[..., None]  # bevel catches the light
    for _ in range(int(rng.integers(1, 4))):
        radius = rng.uniform(0.045, 0.075) * size
        lx = cx + rng.uniform(-1, 1) * max(half[0] - radius, 0)
        ly = cy + rng.uniform(-1, 1) * max(half[1] - radius, 0)
        dist = np.hypot(xs - lx, ys - ly)
        glass = np.clip(radius - dist + 0.5, 0, 1)[..., None]
        img[:] = img * (1 - glass) + glass * rng.uniform(0.03, 0.09)
        img += (0.35 * np.exp(-((dist - radius) ** 2) / 1.2))[..., None]  # metal lens ring


def _light_falloff(
    rng: np.random.Generator, size: int, xs: np.ndarray, ys: np.ndarray, strength: float
) -> np.ndarray:
    phi = rng.uniform(0, 2 * math.pi)
    ramp = xs * math.cos(phi) + ys * math.sin(phi)
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    cx, cy = rng.uniform(0, size, 2)
    radial = np.minimum(((xs - cx) ** 2 + (ys - cy) ** 2) / (0.5 * size**2), 1.0)
    return (1.0 - strength * (0.6 * ramp + 0.4 * radial))[..., None]


def _gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    radius = max(1, int(math.ceil(3 * sigma)))
    taps = np.exp(-(np.arange(-radius, radius + 1) ** 2) / (2 * sigma**2))
    taps /= taps.sum()
    out = img
    for axis in (0, 1):
        pad = [(radius, radius) if a == axis else (0, 0) for a in range(3)]
        padded = np.pad(out, pad, mode="reflect")
        n = img.shape[axis]
        out = sum(w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(taps))
    return out.astype(np.float32)


def _luminance(img: np.ndarray, x: float, y: float) -> float:
    size = img.shape[0]
    return float(img[int(np.clip(y, 0, size - 1)), int(np.clip(x, 0, size - 1))].mean())


def _polyline_distance(
    xs: np.ndarray, ys: np.ndarray, points: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distance of every pixel to the polyline, and where along it (0..1) the nearest point lies."""
    a, b = points[:-1], points[1:]
    seg = b - a
    seg_len2 = np.maximum((seg**2).sum(1), 1e-9)
    px = xs[None] - a[:, 0, None, None]
    py = ys[None] - a[:, 1, None, None]
    t = np.clip(
        (px * seg[:, 0, None, None] + py * seg[:, 1, None, None]) / seg_len2[:, None, None], 0, 1
    )
    d2 = (px - t * seg[:, 0, None, None]) ** 2 + (py - t * seg[:, 1, None, None]) ** 2
    nearest = d2.argmin(0)
    dist = np.sqrt(np.take_along_axis(d2, nearest[None], 0)[0])
    along = (nearest + np.take_along_axis(t, nearest[None], 0)[0]) / len(seg)
    return dist, along


def _footprint_box(weight: np.ndarray, fraction: float) -> tuple[float, float, float, float] | None:
    peak = float(np.abs(weight).max())
    if peak <= 0:
        return None
    rows, cols = np.nonzero(np.abs(weight) >= fraction * peak)
    if rows.size == 0:
        return None
    # a margin like an annotator's, so a hairline scratch is not a one-pixel-thin box
    h, w = weight.shape
    return (
        float(max(cols.min() - BOX_MARGIN, 0)),
        float(max(rows.min() - BOX_MARGIN, 0)),
        float(min(cols.max() + 1 + BOX_MARGIN, w)),
        float(min(rows.max() + 1 + BOX_MARGIN, h)),
    )


def _scratch(img, rng, size, xs, ys, light):
    length = rng.uniform(0.2, 0.55) * size
    start = rng.uniform(0.1, 0.9, 2) * size
    angle = rng.uniform(0, 2 * math.pi)
    end = np.clip(start + length * np.array([math.cos(angle), math.sin(angle)]), 2, size - 2)
    normal = np.array([-math.sin(angle), math.cos(angle)])
    control = (start + end) / 2 + normal * rng.normal(0, 0.12) * length
    t = np.linspace(0, 1, 17)[:, None]
    points = (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end
    dist, along = _polyline_distance(xs, ys, points)
    width = rng.uniform(0.45, 0.9)
    taper = np.sqrt(np.clip(np.minimum(along, 1 - along) / 0.08, 0, 1))
    flicker = 0.75 + 0.25 * np.sin(along * rng.uniform(8, 25) + rng.uniform(0, 6.3))
    profile = np.exp(-(dist**2) / (2 * width**2)) * taper * flicker
    # bright scratches vanish on bright surfaces, so those mostly get dark ones
    sign = -1.0 if rng.random() < _luminance(img, *start) else 1.0
    img += (sign * rng.uniform(0.1, 0.24) * profile)[..., None]
    # the box spans what an annotator sees, not the faded tips
    return _footprint_box(profile, 0.5)


def _dent(img, rng, size, xs, ys, light):
    cx, cy = rng.uniform(0.12, 0.88, 2) * size
    rx = rng.uniform(4.0, 11.0)
    ry = rx * rng.uniform(0.6, 1.0)
    rot = rng.uniform(0, math.pi)
    a = (xs - cx) * math.cos(rot) + (ys - cy) * math.sin(rot)
    b = -(xs - cx) * math.sin(rot) + (ys - cy) * math.cos(rot)
    height = np.exp(-2.0 * ((a / rx) ** 2 + (b / ry) ** 2))
    gy, gx = np.gradient(height)
    # the slope facing the light brightens, the far slope falls into shadow
    shade = gx * math.cos(light) + gy * math.sin(light)
    shade /= max(float(np.abs(shade).max()), 1e-6)
    effect = rng.uniform(0.12, 0.28) * shade - 0.05 * height
    # shading scales with reflectance, but a glossy black surface still shows its highlight
    img += effect[..., None] * np.maximum(img, 0.3)
    return _footprint_box(effect, 0.3)


def _spot(img, rng, size, xs, ys, light):
    cx, cy = rng.uniform(0.08, 0.92, 2) * size
    base = _luminance(img, cx, cy)
    if rng.random() < 0.25:  # water mark: a faint ring with a fainter inside
        radius = rng.uniform(4.0, 8.0)
        dist = np.hypot(xs - cx, ys - cy)
        alpha = 0.35 * np.exp(-((dist - radius) ** 2) / 1.5) + 0.1 * (dist < radius)
        alpha = alpha * rng.uniform(0.6, 1.0)
    else:
        radius = rng.uniform(2.0, 5.0)
        alpha = np.zeros_like(xs)
        for _ in range(int(rng.integers(1, 4))):
            ox, oy = rng.normal(0, 0.4 * radius, 2)
            sigma = radius * rng.uniform(0.5, 0.9)
            alpha += np.exp(-((xs - cx - ox) ** 2 + (ys - cy - oy) ** 2) / (2 * sigma**2))
        alpha = np.clip(alpha, 0, 1) * rng.uniform(0.4, 0.85)
    color = _STAIN_COLORS[rng.integers(len(_STAIN_COLORS))]
    if abs(float(color.mean()) - base) < 0.2:  # a stain the colour of the surface is invisible
        color = _STAIN_COLORS[4] if base < 0.5 else _STAIN_COLORS[3]
    img[:] = img * (1 - alpha[..., None]) + color * alpha[..., None]
    return _footprint_box(alpha, 0.2)


def _crack(img, rng, size, xs, ys, light):
    base_luminance = _luminance(img, size / 2, size / 2)
    heading = rng.uniform(0, 2 * math.pi)
    main = _jagged_path(rng, rng.uniform(0.15, 0.85, 2) * size, heading, int(rng.integers(10, 22)))
    paths = [main]
    for _ in range(int(rng.integers(0, 3))):
        root = main[int(rng.integers(2, len(main) - 1))]
        turn = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.1)
        paths.append(_jagged_path(rng, root, heading + turn, int(rng.integers(4, 10))))
    dist = np.min([_polyline_distance(xs, ys, np.clip(p, 0, size))[0] for p in paths], axis=0)
    profile = np.exp(-(dist**2) / (2 * rng.uniform(0.4, 0.75) ** 2))
    if base_luminance < 0.25:  # on dark glass a crack scatters light and shows bright
        img += rng.uniform(0.15, 0.3) * profile[..., None]
    else:
        img *= 1.0 - rng.uniform(0.35, 0.65) * profile[..., None]
    return _footprint_box(profile, 0.25)


def _jagged_path(rng, start: np.ndarray, heading: float, steps: int) -> np.ndarray:
    points = [np.asarray(start, dtype=np.float64)]
    angle = heading
    for _ in range(steps):
        # pulled back toward the main heading so the crack zigzags instead of curling up
        angle = heading + 0.5 * (angle - heading) + rng.normal(0, 0.55)
        step = rng.uniform(1.5, 2.8)
        points.append(points[-1] + step * np.array([math.cos(angle), math.sin(angle)]))
    return np.array(points)


def _discoloration(img, rng, size, xs, ys, light):
    """A large soft patch whose hue shifts while its brightness stays: heat tint on metal,
    a yellowed or faded patch on a phone back. No edge, no line, no dark mark."""
    cx, cy = rng.uniform(0.25, 0.75, 2) * size
    radius = rng.uniform(0.14, 0.24) * size
    # a lumpy outline, not a disc: the distance is warped by smooth noise
    warp = 1.0 + 0.3 * _smooth_noise(rng, size, 3)
    dist = np.hypot(xs - cx, ys - cy) / (radius * np.clip(warp, 0.5, 1.5))
    edge = np.clip((1.1 - dist) / 0.6, 0, 1)
    alpha = edge * edge * (3 - 2 * edge)  # a plateau with a soft rim, no outline
    hue = rng.uniform(0, 2 * math.pi)
    # a tint with zero channel mean changes colour, not brightness
    tint = np.array([math.cos(hue + k * 2 * math.pi / 3) for k in range(3)], np.float32)
    strength = rng.uniform(0.14, 0.24)
    level = max(float(img.mean()), 0.35)  # dark glass still shows a tinted sheen
    img += (strength * level * alpha)[..., None] * tint
    return _footprint_box(alpha, 0.3)


_DRAW = {
    "scratch": _scratch,
    "dent": _dent,
    "spot": _spot,
    "crack": _crack,
    "discoloration": _discoloration,
}
