"""Active learning: which unlabeled items the labeling queue offers first, and why."""

import numpy as np
import pytest
import torch
from PIL import Image

from ml.engine.active_learning import (
    DEFAULT_STRATEGY,
    Strategy,
    novelty,
    score_images,
    select,
    uncertainty,
)
from ml.engine.artifact import load_artifact

# synthetic embeddings: model features only, no appearance block
PLAIN = Strategy(appearance_grid=0)
PLAIN_NO_DIVERSITY = Strategy(appearance_grid=0, diversity_radius=0)


def _cluster(rng, centre, count, spread=0.3):
    return np.asarray(centre, float) + spread * rng.standard_normal((count, len(centre)))


def test_uncertainty_peaks_at_the_boundary_and_vanishes_at_the_ends():
    assert uncertainty(np.array([0.0, 0.25, 0.5, 0.75, 1.0])).tolist() == pytest.approx(
        [0.0, 0.5, 1.0, 0.5, 0.0]
    )
    # a line whose model rejects from 0.8 is most unsure there
    assert uncertainty(np.array([0.4, 0.8, 0.9]), boundary=0.8).tolist() == pytest.approx(
        [0.5, 1.0, 0.5]
    )


def test_an_item_far_from_every_labeled_image_is_novel_and_one_among_them_is_not():
    rng = np.random.default_rng(0)
    reference = _cluster(rng, [0, 0, 0, 0], 200)
    pool = np.vstack([_cluster(rng, [0, 0, 0, 0], 5), _cluster(rng, [6, 0, 0, 0], 5)])
    score, _, spacing = novelty(pool, reference, PLAIN)
    assert spacing > 0
    assert score[:5].max() < 0.2
    assert score[5:].min() > 0.6
    assert ((0 <= score) & (score <= 1)).all()


def test_a_confidently_ok_item_of_a_new_kind_outranks_a_familiar_one():
    # the point: a new defect type scores low (the model says ok), so only its
    # distance from the labeled images can bring it forward
    rng = np.random.default_rng(1)
    reference = _cluster(rng, [0, 0, 0], 300)
    familiar = _cluster(rng, [0, 0, 0], 40)
    new_kind = _cluster(rng, [0, 5, 0], 10)
    embeddings = np.vstack([familiar, new_kind])
    probabilities = np.full(50, 0.02)
    picks = select(probabilities, embeddings, reference, k=10, strategy=PLAIN)
    assert sum(p.index >= 40 for p in picks) >= 9
    assert all(p.reason == "novel" for p in picks if p.index >= 40)


def test_uncertain_items_come_first_among_familiar_ones_and_say_why():
    rng = np.random.default_rng(2)
    reference = _cluster(rng, [0, 0], 200)
    embeddings = _cluster(rng, [0, 0], 30)
    probabilities = np.full(30, 0.03)
    probabilities[[4, 17]] = [0.55, 0.45]
    # equal weights: by default novelty weighs double, and a gaussian cluster's own tail
    # items are as novel as these two are uncertain
    equal = Strategy(appearance_grid=0, diversity_radius=0, uncertainty_weight=1.0, boundary=0.5)
    picks = select(probabilities, embeddings, reference, k=2, strategy=equal)
    assert sorted(p.index for p in picks) == [4, 17]
    assert {p.reason for p in picks} == {"uncertain"}
    assert picks[0].score >= picks[1].score


def test_diversity_spends_one_pick_on_a_burst_of_near_duplicates():
    rng = np.random.default_rng(3)
    reference = _cluster(rng, [0, 0, 0], 300)
    burst = np.tile([[0.0, 9.0, 0.0]], (20, 1)) + 0.01 * rng.standard_normal((20, 3))
    others = np.vstack([_cluster(rng, [6, 0, 0], 3, 0.5), _cluster(rng, [0, 0, 6], 3, 0.5)])
    embeddings = np.vstack([burst, others])
    probabilities = np.full(len(embeddings), 0.05)
    with_diversity = [p.index for p in select(probabilities, embeddings, reference, 5, PLAIN)]
    assert sum(i < 20 for i in with_diversity) == 1
    without = select(probabilities, embeddings, reference, k=5, strategy=PLAIN_NO_DIVERSITY)
    assert all(p.index < 20 for p in without)  # the burst is the most novel


def test_weights_decide_which_term_counts():
    rng = np.random.default_rng(4)
    reference = _cluster(rng, [0, 0], 200)
    embeddings = np.vstack([_cluster(rng, [0, 0], 1), _cluster(rng, [8, 0], 1)])
    probabilities = np.array([0.5, 0.01])  # item 0 unsure, item 1 novel
    only_unsure = Strategy(novelty_weight=0.0, diversity_radius=0, appearance_grid=0)
    only_novel = Strategy(uncertainty_weight=0.0, diversity_radius=0, appearance_grid=0)
    assert select(probabilities, embeddings, reference, 1, only_unsure)[0].index == 0
    assert select(probabilities, embeddings, reference, 1, only_novel)[0].index == 1


def test_select_handles_small_and_empty_inputs_and_refuses_mismatches():
    embeddings = np.zeros((3, 4))
    assert select(np.zeros(0), np.zeros((0, 4)), np.zeros((5, 4)), 3, PLAIN) == []
    assert len(select(np.full(3, 0.5), embeddings, np.zeros((0, 4)), 10, PLAIN)) == 3
    picks = select(np.full(3, 0.5), embeddings, np.zeros((0, 4)), 3, PLAIN)
    assert sorted(p.index for p in picks) == [0, 1, 2]  # each once
    assert all(p.novelty == 0.0 for p in picks)  # nothing labeled: nothing is known new
    with pytest.raises(ValueError, match="embeddings"):
        select(np.zeros(2), embeddings, np.zeros((5, 4)), 1, PLAIN)
    with pytest.raises(ValueError, match="reference"):
        select(np.zeros(3), embeddings, np.zeros((5, 2)), 1, PLAIN)
    with pytest.raises(ValueError, match="appearance block"):
        select(np.zeros(3), embeddings, np.zeros((5, 4)), 1)  # the default expects one
    with pytest.raises(ValueError):
        Strategy(uncertainty_weight=0.0, novelty_weight=0.0)


def test_the_strategy_shows_every_parameter():
    shown = DEFAULT_STRATEGY.to_dict()
    assert shown["name"] == DEFAULT_STRATEGY.name
    # a new type scores low, not uncertain: novelty matters at least as much
    assert shown["novelty_weight"] >= shown["uncertainty_weight"] > 0
    assert set(shown) >= {"boundary", "neighbours", "diversity_radius", "reference_size"}


def test_score_images_gives_the_models_own_probabilities_and_one_embedding_each(
    quick_model, small_dataset
):
    model = load_artifact(quick_model.artifact_path)
    paths = sorted((small_dataset / "images").iterdir())[:5]
    images = [Image.open(p).convert("RGB") for p in paths]
    probabilities, embeddings = score_images(model, images, batch_size=2)
    assert embeddings.shape == (5, model.embedding_size + DEFAULT_STRATEGY.appearance_size)
    expected = [o.defect_probability for o in model.predict(images)]
    assert probabilities.tolist() == pytest.approx(expected, abs=1e-6)
    assert np.allclose(model.embed(images[:1]), embeddings[:1, : model.embedding_size], atol=1e-5)
    # the appearance block ends with the image's mean colour in the model's input space
    mean_colour = model.preprocess(images[:1]).mean((2, 3)).numpy()
    assert np.allclose(embeddings[:1, -3:], mean_colour, atol=1e-5)
    empty_p, empty_e = score_images(model, [])
    assert empty_p.shape == (0,) and empty_e.shape == (0, embeddings.shape[1])


def test_the_network_gives_the_same_outputs_with_its_features():
    model = load_artifact_free_network()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits, maps = model(x)
        logits2, maps2, pooled = model.forward_with_features(x)
    assert torch.equal(logits, logits2) and torch.equal(maps, maps2)
    assert pooled.shape == (2, model.image_head.in_features)


def load_artifact_free_network():
    from ml.engine.model import build_model

    torch.manual_seed(0)
    return build_model("loupe-fpn-v1", 2).eval()
