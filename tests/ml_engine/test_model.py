import pytest
import torch

from ml.engine.model import DEFAULT_ARCHITECTURE, build_model, with_more_classes


def test_a_grown_network_answers_as_before_on_its_old_classes():
    torch.manual_seed(3)
    network = build_model(DEFAULT_ARCHITECTURE, 4)
    for parameter in network.parameters():  # trained-looking weights, not the init's
        parameter.data.add_(torch.randn_like(parameter) * 0.1)
    network.eval()
    grown = with_more_classes(network, 2).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        logit, maps = network(x)
        grown_logit, grown_maps = grown(x)
    assert grown_maps.shape == (3, 6, 16, 16)
    assert torch.allclose(grown_logit, logit, atol=1e-5)
    assert torch.allclose(grown_maps[:, :4], maps, atol=1e-5)
    # the new classes start near "absent" everywhere, as a fresh head does
    assert torch.sigmoid(grown_maps[:, 4:]).mean() < 0.2


def test_growing_copies_rather_than_shares_the_weights():
    network = build_model(DEFAULT_ARCHITECTURE, 4)
    grown = with_more_classes(network, 1)
    grown.stem[0].weight.data.zero_()
    assert network.stem[0].weight.abs().sum() > 0


def test_growing_by_nothing_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        with_more_classes(build_model(DEFAULT_ARCHITECTURE, 4), 0)
