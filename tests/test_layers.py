import pytest
import torch
from torch_geometric.utils import scatter

from genie.layers import (AssociationHead, ProductConv, QueryAttention, ReadIn, SourceConv, TemporalAttention,
                          mean_adjacency)

# A 4-node graph: 0 -> 1, 2 -> 1, 1 -> 2 (node 3 has no incoming edge).
EDGES = torch.tensor([[0, 2, 1], [1, 1, 2]])


def test_mean_adjacency_averages_incoming_edges():
    adj = mean_adjacency(EDGES, 4).to_dense()
    assert adj.tolist() == [[0, 0, 0, 0], [0.5, 0, 0.5, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    bipartite = mean_adjacency(torch.tensor([[0, 1, 2], [0, 0, 1]]), 2, 3).to_dense()
    assert bipartite.tolist() == [[0.5, 0.5, 0], [0, 0, 1]]


def test_product_conv_is_the_per_edge_mean_done_node_level():
    torch.manual_seed(0)
    layer = ProductConv(3, 5)
    x = torch.randn(4, 2, 3)  # 4 nodes, 2 windows
    source_edges = torch.tensor([[3], [0]])
    out = layer(x, EDGES, source_edges)
    assert out.shape == (4, 2, 5)
    # Reference: per-edge messages W1 x_j averaged with PyG's scatter, for each window.
    for w in range(2):
        xs = x[:, w]
        sta = scatter(layer.lin_station(xs)[EDGES[0]], EDGES[1], dim=0, dim_size=4, reduce="mean")
        src = scatter(layer.lin_source(xs)[source_edges[0]], source_edges[1], dim=0, dim_size=4, reduce="mean")
        expected = layer.act(layer.lin_self(xs) + sta + src)
        assert torch.allclose(out[:, w], expected, atol=1e-6)
    # Sparse adjacencies give the same result as edge indices.
    again = layer(x, mean_adjacency(EDGES, 4), mean_adjacency(source_edges, 4))
    assert torch.equal(out, again)
    out.sum().backward()
    assert layer.lin_station.weight.grad is not None


def test_read_in_means_over_stations_with_pair_features():
    torch.manual_seed(0)
    layer = ReadIn(in_channels=3, pair_channels=4, hidden_channels=6, out_channels=2)
    x = torch.randn(5, 3, 3)  # 5 product nodes, 3 windows
    pair_attr = torch.randn(5, 4)
    to_source = torch.tensor([[0, 1, 2, 3, 4], [0, 0, 1, 1, 1]])
    out = layer(x, to_source, pair_attr)
    assert out.shape == (2, 3, 2)
    h = layer.act(layer.lin_node(x) + layer.lin_pair(pair_attr)[:, None])
    assert torch.allclose(out[1], layer.lin_out(h[2:].mean(0)), atol=1e-6)


def test_source_conv_is_residual_and_keeps_shape():
    layer = SourceConv(4)
    x = torch.randn(4, 3, 4)
    out = layer(x, EDGES, torch.zeros(4, 3))
    assert out.shape == x.shape
    for module in (layer.lin_self, layer.lin_neighbour, layer.lin_offset):
        torch.nn.init.zeros_(module.weight)
    torch.nn.init.zeros_(layer.lin_self.bias)
    assert torch.equal(layer(x, EDGES, torch.zeros(4, 3)), x)


def test_temporal_attention_weights_offsets():
    torch.manual_seed(0)
    layer = TemporalAttention(channels=4, time_scale_s=2.0)
    z = torch.randn(7, 5, 3, 4)  # [X, B, K, C]
    out = layer(z, torch.tensor([-2.0, 0.0, 2.0]))
    assert out.shape == (7, 5, 4)
    # With identical embeddings at every offset except for time, a score that only looks at
    # |dt| picks the zero offset: make the score prefer small dt^2.
    torch.nn.init.zeros_(layer.lin_key.weight)
    torch.nn.init.zeros_(layer.lin_key.bias)
    with torch.no_grad():
        layer.lin_key.weight[0, -1] = -50.0  # channel 0 = -50 * (dt / scale)^2
        layer.score.weight.zero_()
        layer.score.weight[0, 0] = 1.0
    single = layer(z[:1, :1], torch.tensor([-2.0, 0.0, 2.0]))
    inputs = torch.cat([z[0, 0, 1], torch.tensor([0.0, 0.0])])
    assert torch.allclose(single[0, 0], layer.lin_value(inputs), atol=1e-4)


def test_query_attention_shapes_and_convexity():
    layer = QueryAttention(channels=3)
    z = torch.randn(2, 6, 8, 3)  # [B, Q, k, C]
    offset = torch.randn(2, 6, 8, 3)
    out = layer(z, offset)
    assert out.shape == (2, 6, 3)
    # The output is a convex combination of the per-neighbour values.
    values = layer.lin_value(torch.cat([z, offset, offset.square().sum(-1, keepdim=True)], -1))
    assert (out <= values.amax(-2) + 1e-5).all() and (out >= values.amin(-2) - 1e-5).all()


def test_association_head_masks_invalid_candidates_and_has_null():
    head = AssociationHead(channels=4, station_channels=5, pick_channels=6, hidden_channels=7)
    e = torch.randn(3, 4)  # 3 sources
    station_attr = torch.randn(3, 2, 5)  # 2 stations
    pick_attr = torch.randn(3, 2, 4, 6)  # 4 candidates
    valid = torch.ones(3, 2, 4, dtype=torch.bool)
    valid[0, 1, 2:] = False
    logits = head(e, station_attr, pick_attr, valid)
    assert logits.shape == (3, 2, 5, 2)
    prob = torch.softmax(logits, dim=-2)
    assert prob[0, 1, 2:4].sum() == 0
    assert torch.allclose(prob.sum(-2), torch.ones(3, 2, 2))
    assert torch.isfinite(logits[:, :, 4]).all()  # the null slot is always available


@pytest.mark.parametrize("layer", [ProductConv(2, 2), ReadIn(2, 1, 2, 2), SourceConv(2), TemporalAttention(2, 1.0),
                                   QueryAttention(2), AssociationHead(2, 1, 1, 2)])
def test_reset_parameters_reinitialises(layer):
    before = [p.detach().clone() for p in layer.parameters()]
    torch.manual_seed(123)
    layer.reset_parameters()
    after = list(layer.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after) if a.numel() > 1)


def test_product_conv_inference_path_equals_training_path():
    # Inference accumulates in place, training out of place: the same numbers.
    torch.manual_seed(0)
    conv = ProductConv(5, 7)
    x = torch.rand(30, 4, 5)
    station, source = torch.randint(0, 30, (2, 80)), torch.randint(0, 30, (2, 60))
    trained = conv(x, station, source)
    with torch.no_grad():
        inferred = conv(x, station, source)
    assert trained.requires_grad and not inferred.requires_grad
    torch.testing.assert_close(inferred, trained.detach(), rtol=0, atol=0)


def test_prelu_in_place_only_when_inferring():
    from genie.layers import prelu_

    act = torch.nn.PReLU()
    with torch.no_grad():
        act.weight.fill_(0.3)
    x = torch.tensor([[-2.0, 0.0, 1.5], [3.0, -0.5, -1e-3]])
    expected = act(x).detach()
    assert expected.tolist()[0][0] == pytest.approx(-0.6)
    with torch.no_grad():
        y = x.clone()
        out = prelu_(act, y)
    assert out.data_ptr() == y.data_ptr() and torch.equal(out, expected)
    z = x.clone().requires_grad_()
    out = prelu_(act, z)  # training: PReLU itself, input kept, slope learnt
    assert torch.equal(out.detach(), expected) and torch.equal(z.detach(), x)
    out.sum().backward()
    assert act.weight.grad is not None and act.weight.grad.item() == pytest.approx(-2.0 - 0.5 - 1e-3)


def test_read_in_and_source_conv_infer_as_they_train():
    torch.manual_seed(1)
    read_in, conv = ReadIn(5, 3, 8, 6), SourceConv(6)
    x, pairs = torch.randn(12, 4, 5), torch.randn(12, 3)
    to_source = torch.stack([torch.arange(12), torch.arange(12) % 3])
    graph, offsets = torch.tensor([[0, 1, 2], [1, 2, 0]]), torch.randn(3, 3)
    trained = conv(read_in(x, to_source, pairs, 3), graph, offsets)
    with torch.no_grad():
        inferred = conv(read_in(x, to_source, pairs, 3), graph, offsets)
    assert trained.requires_grad and not inferred.requires_grad
    torch.testing.assert_close(inferred, trained.detach(), rtol=0, atol=0)
