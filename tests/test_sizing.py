import numpy as np
import pytest
import torch

from generator.params import GeneratorParams
from genie.graphs import knn_edges
from genie.model import GenieModel, ModelConfig
from genie.sizing import detection_range_km, region_box, size_model
from genie.train import model_config_for
from tests.conftest import TINY
from tests.test_generator import grid_network


def _dense_reference(m: GenieModel, station_xyz: np.ndarray, features: torch.Tensor) -> torch.Tensor:
    """Source embeddings of the product graph restricted to the pairs in ``m.pairs``, computed
    densely on every (source, station) pair with a mask, from the factor graphs themselves."""
    n_x, n_s = m.n_sources, m.n_stations
    pairs = m.pairs.numpy()
    mask = torch.zeros(n_x, n_s)
    mask[pairs[:, 1], pairs[:, 0]] = 1.0
    w = features.shape[1]
    h = torch.zeros(n_x, n_s, w, features.shape[-1])
    h[pairs[:, 1], pairs[:, 0]] = features
    station = knn_edges(station_xyz[:, :2], m.config.k_stations)  # float64, as built (grid ties)
    a_station = torch.zeros(n_s, n_s)
    a_station[station[1], station[0]] = 1.0  # [target, neighbour]
    a_source = torch.zeros(n_x, n_x)
    graph = m.source_graph_edges.numpy()
    a_source[graph[1], graph[0]] = 1.0
    mk = mask[..., None, None]

    def masked_mean_station(y):
        total = torch.einsum("ta,xawf->xtwf", a_station, y * mk)
        count = torch.einsum("ta,xa->xt", a_station, mask).clamp(min=1)[..., None, None]
        return total / count

    def masked_mean_source(y):
        total = torch.einsum("yx,xswf->yswf", a_source, y * mk)
        count = torch.einsum("yx,xs->ys", a_source, mask).clamp(min=1)[..., None, None]
        return total / count

    for layer in m.product_layers:
        h = layer.act(layer.lin_self(h) + layer.lin_station(masked_mean_station(h))
                      + layer.lin_source(masked_mean_source(h))) * mk
    offset = (m.station_xyz[None, :, :] - m.source_xyz[:, None, :]) / m.config.label_sigma_km
    pair_attr = torch.cat([offset, offset[..., :2].norm(dim=-1, keepdim=True)], dim=-1)  # [X, S, 4]
    r = m.read_in
    inner = r.act(r.lin_node(h) + r.lin_pair(pair_attr)[:, :, None, :]) * mk
    z = r.lin_out(inner.sum(1) / mask.sum(1).clamp(min=1)[:, None, None])
    graph_adj = m._adjacencies()[3]
    for layer in m.source_layers:
        z = layer(z, graph_adj, m.source_offset)
    return z


def test_sparse_product_equals_the_masked_full_product(homogeneous_tt):
    # A 6 x 6 grid (10 km) with pairs within 22 km: about a third of the pairs. The sparse graph's
    # embeddings and gradients equal a dense computation over all pairs with the far ones masked.
    torch.manual_seed(0)
    net = grid_network(6, 10.0)
    m = GenieModel.build(ModelConfig(**{**TINY, "max_distance_km": 22.0}), net, homogeneous_tt)
    assert not m.full_product and 0 < m.pairs.shape[0] < 0.6 * m.n_sources * m.n_stations
    features = torch.rand(m.pairs.shape[0], 6, 9 if m.config.wide_kernel_s else 5)
    z = m.embed(features)
    reference = _dense_reference(m, net.xyz, features)
    torch.testing.assert_close(z, reference, atol=1e-5, rtol=1e-5)
    # Gradients through the sparse aggregations (their own backward) match the dense ones.
    weights = [layer.lin_station.weight for layer in m.product_layers] + [m.read_in.lin_pair.weight]
    grads = torch.autograd.grad((z * z).sum(), weights)
    reference_grads = torch.autograd.grad((reference * reference).sum(), weights)
    for a, b in zip(grads, reference_grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_full_range_gives_the_full_product(homogeneous_tt):
    m = GenieModel.build(ModelConfig(**{**TINY, "max_distance_km": 1000.0}), grid_network(4, 10.0), homogeneous_tt)
    assert m.full_product


def test_detection_range_grows_with_the_detection_distance():
    net = grid_network(8, 30.0)
    bounds = region_box(net, 20.0, 0.0, 20.0)
    near = detection_range_km(net, GeneratorParams(pdist_log10_km_at_m0=1.2), bounds)
    far = detection_range_km(net, GeneratorParams(pdist_log10_km_at_m0=1.6), bounds)
    assert 30.0 < near < far < 300.0
    # The range is that of the nearest ten picking stations, not of the largest event: with an
    # M 5 picked everywhere, the range still stays well inside the network.
    assert far < 0.6 * np.hypot(bounds[1] - bounds[0], bounds[3] - bounds[2])


def test_sizing_keeps_a_local_network_and_scales_a_regional_one():
    params = GeneratorParams(depth_max_km=20.0)
    small = {**ModelConfig().to_dict(), **TINY, "n_sources": 60, "label_sigma_km": 8.0, "product_budget": 5000}
    # 16 stations 10 km apart: every pair in range; 8 km spacing over the padded 70 km x 70 km and
    # TINY's 15 km of depth needs ceil(4900 * 15 / 512) = 144 nodes, within the budget.
    local = size_model(small, grid_network(4, 10.0), params)
    assert local["max_distance_km"] is None and local["n_sources"] == 144 and local["label_sigma_km"] == 8.0

    # 100 stations over 270 km: the graph is cut to the range, the nodes to the budget, and the
    # label and kernels widen to the spacing the nodes reach.
    regional = size_model(small, grid_network(10, 30.0), params)
    assert regional["max_distance_km"] is not None
    x = grid_network(10, 30.0).xyz
    bounds = region_box(grid_network(10, 30.0), small["padding_km"], 0.0, small["depth_max_km"])
    area = (bounds[1] - bounds[0]) * (bounds[3] - bounds[2])
    assert regional["n_sources"] < area * 15.0 / 8.0**3  # fewer than the 8 km spacing would need
    assert regional["label_sigma_km"] > 8.0
    factor = regional["label_sigma_km"] / 8.0
    assert regional["kernel_s"] == pytest.approx(TINY["kernel_s"] * factor, rel=0.01)
    # The product graph the sizes give stays within the budget (10 % tolerance: the count per
    # node is a mean over the region).
    src = np.random.default_rng(0).uniform(bounds[0], bounds[1], (regional["n_sources"], 2))
    within = np.hypot(src[:, None, 0] - x[None, :, 0], src[:, None, 1] - x[None, :, 1]) <= regional["max_distance_km"]
    assert within.sum() <= 1.1 * 5000


def test_model_config_for_fills_only_what_the_settings_leave_out():
    net = grid_network(10, 30.0)
    given = model_config_for({**TINY, "max_distance_km": 50.0}, GeneratorParams(), net)
    assert given.max_distance_km == 50.0 and given.n_sources == TINY["n_sources"]  # no budget: sizes as given
    auto = model_config_for(TINY, GeneratorParams(), net)
    assert auto.max_distance_km is not None and auto.max_distance_km > 50.0


@pytest.mark.gpu
def test_sparse_product_on_cuda_matches_cpu(homogeneous_tt):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    torch.manual_seed(0)
    m = GenieModel.build(ModelConfig(**{**TINY, "max_distance_km": 22.0}), grid_network(6, 10.0), homogeneous_tt)
    features = torch.rand(m.pairs.shape[0], 6, 9 if m.config.wide_kernel_s else 5)
    z = m.embed(features)
    gpu = m.to("cuda")
    zg = gpu.embed(features.to("cuda"))
    torch.testing.assert_close(zg.cpu(), z, atol=1e-4, rtol=1e-4)
    (zg * zg).sum().backward()  # the sparse backward runs on the device
    assert gpu.product_layers[0].lin_station.weight.grad.device.type == "cuda"
