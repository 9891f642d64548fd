import numpy as np
from scipy.spatial import cKDTree

from genie.graphs import knn_edges, lloyd_nodes, product_graph, within_range


def test_knn_edges_sizes_and_neighbours():
    pts = np.array([[0.0, 0, 0], [1, 0, 0], [3, 0, 0], [10, 0, 0]])
    e = knn_edges(pts, 2)
    assert e.shape == (2, 8) and (e[0] != e[1]).all()
    into_0 = sorted(e[0, e[1] == 0].tolist())
    assert into_0 == [1, 2]
    assert knn_edges(pts[:1], 3).shape == (2, 0)
    dup = np.zeros((3, 3))
    assert (knn_edges(dup, 5)[0] != knn_edges(dup, 5)[1]).all()


def test_lloyd_nodes_cover_the_box_evenly():
    rng = np.random.default_rng(0)
    nodes = lloyd_nodes((0, 100, 0, 50, 0, 20), 200, rng)
    assert nodes.shape == (200, 3)
    assert nodes[:, 0].min() >= 0 and nodes[:, 0].max() <= 100 and nodes[:, 2].max() <= 20
    d, _ = cKDTree(nodes).query(nodes, k=2)
    nn = d[:, 1]
    assert nn.std() / nn.mean() < 0.35  # packed, not clumped like uniform random points
    deep = lloyd_nodes((0, 100, 0, 50, 0, 20), 200, np.random.default_rng(0), depth_scale=3.0)
    assert len(np.unique(np.round(deep[:, 2]))) > len(np.unique(np.round(nodes[:, 2])))


def test_product_graph_sizes_and_numbering():
    n_sta, n_src = 4, 5
    s_edges = knn_edges(np.column_stack([np.arange(n_sta), np.zeros(n_sta), np.zeros(n_sta)]), 2)
    x_edges = knn_edges(np.column_stack([np.arange(n_src), np.zeros(n_src), np.zeros(n_src)]) * 10.0, 3)
    g = product_graph(s_edges, x_edges, n_sta, n_src)
    assert g.n_nodes == 20
    assert g.station_edges.shape[1] == s_edges.shape[1] * n_src
    assert g.source_edges.shape[1] == x_edges.shape[1] * n_sta
    # node p = x * n_sta + s; station edges keep the source, source edges keep the station
    a, b = g.pairs[g.station_edges[0]], g.pairs[g.station_edges[1]]
    assert (a[:, 1] == b[:, 1]).all() and (a[:, 0] != b[:, 0]).all()
    a, b = g.pairs[g.source_edges[0]], g.pairs[g.source_edges[1]]
    assert (a[:, 0] == b[:, 0]).all() and (a[:, 1] != b[:, 1]).all()
    assert g.pairs[7].tolist() == [3, 1]


def test_sparse_product_keeps_pairs_in_range():
    stations = np.array([[0.0, 0, 0], [100.0, 0, 0]])
    sources = np.array([[10.0, 0, 5], [90.0, 0, 5], [50.0, 0, 5]])
    keep = within_range(sources, stations, 60.0)
    assert keep.tolist() == [[True, False], [False, True], [True, True]]
    g = product_graph(knn_edges(stations, 1), knn_edges(sources, 2), 2, 3, keep)
    assert g.n_nodes == 4
    ends = np.concatenate([g.station_edges.ravel(), g.source_edges.ravel()])
    assert ends.max() < 4
    assert g.station_edges.shape[1] == 2  # only source 2 has both stations
