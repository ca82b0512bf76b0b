"""Active learning on what a model cannot see: a new type that looks different but that the
model's features map onto familiar items, and items the model already rejects."""

import numpy as np

from ml.engine.active_learning import Strategy, novelty, select

GRID = 2  # 2 x 2 patches: an appearance block of 3 * 4 + 3 values
STRATEGY = Strategy(appearance_grid=GRID)


def _items(rng, count, features, tint=None):
    """Embeddings: model features, then each patch's colour and the image's mean colour.
    Surfaces come in many colours; a tint recolours one patch."""
    base = rng.standard_normal((count, 3))
    patches = np.repeat(base[:, None, :], GRID * GRID, axis=1)
    patches = patches + 0.05 * rng.standard_normal(patches.shape)
    if tint is not None:
        patches[:, 0, :] += tint
    return np.hstack([features, patches.reshape(count, -1), base])


def test_a_tint_the_models_features_miss_is_novel_and_its_items_are_not_taken_for_duplicates():
    rng = np.random.default_rng(0)
    reference = _items(rng, 300, rng.standard_normal((300, 4)))
    familiar = _items(rng, 30, rng.standard_normal((30, 4)))
    # the model maps every tinted item onto one familiar point: blind to the new type
    blind = np.zeros((10, 4)) + 0.01 * rng.standard_normal((10, 4))
    tinted = _items(rng, 10, blind, tint=np.array([1.5, -1.5, 0.0]))
    embeddings = np.vstack([familiar, tinted])
    score, _, _ = novelty(embeddings, reference, STRATEGY)
    assert score[30:].min() > score[:30].max()
    picks = select(np.full(40, 0.05), embeddings, reference, k=10, strategy=STRATEGY)
    # near in features but apart in appearance: diversity keeps them, one each
    assert sum(p.index >= 30 for p in picks) >= 8


def test_a_novel_item_the_model_already_rejects_gives_way_to_one_it_passes():
    rng = np.random.default_rng(2)
    reference = _items(rng, 300, rng.standard_normal((300, 4)))
    tinted = _items(rng, 2, rng.standard_normal((2, 4)), tint=np.array([0.0, 1.5, -1.5]))
    rejected_first = np.array([0.99, 0.05])
    picks = select(rejected_first, tinted, reference, k=2, strategy=STRATEGY)
    assert [p.index for p in picks] == [1, 0]
    # without the discount the rejected item's novelty counts in full
    plain = Strategy(appearance_grid=GRID, discount_rejected=False)
    kept = select(rejected_first, tinted, reference, k=2, strategy=plain)
    assert kept[[p.index for p in kept].index(0)].novelty > picks[1].novelty
