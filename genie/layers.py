"""Layers of the GENIE model, each a small module with ``reset_parameters()``.

Activations are kept node-major, ``[N, W, F]`` for ``N`` graph nodes, ``W`` windows (a batch of
windows, possibly times several origin-time offsets each) and ``F`` features, so that a batch of
windows shares one sparse matrix product per aggregation: ``A @ x.view(N, W * F)``.

Aggregations are node-level (GraphSAGE-style): a Linear map commutes with a mean over
neighbours, so ``W [x_i, mean_j x_j] = W1 x_i + mean_j (W2 x_j)``; relative positions enter as
precomputed node or pair features. This is what makes a window cost a few milliseconds on a CPU
instead of the hundreds a per-edge MLP over the product graph would (issue 5 measurements).

Adjacencies are sparse CSR ``[N_target, N_source]`` matrices with the mean weights as values
(:func:`mean_adjacency`); PyG's ``MessagePassing.propagate`` dispatches them to
``message_and_aggregate``.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch_geometric.nn import MessagePassing


def mean_adjacency(edge_index: torch.Tensor, n_target: int, n_source: int | None = None,
                   device=None) -> torch.Tensor:
    """Sparse CSR ``[n_target, n_source]`` matrix averaging over incoming edges.

    ``edge_index [2, E]``: row 0 = source (neighbour), row 1 = target (PyG convention). Targets
    without edges get a zero row."""
    n_source = n_target if n_source is None else n_source
    edge_index = torch.as_tensor(edge_index, dtype=torch.int64, device=device)
    target, source = edge_index[1], edge_index[0]
    degree = torch.bincount(target, minlength=n_target).clamp(min=1).to(torch.float32)
    values = 1.0 / degree[target]
    coo = torch.sparse_coo_tensor(torch.stack([target, source]), values, (n_target, n_source),
                                  check_invariants=False).coalesce()
    with warnings.catch_warnings():
        # CSR is twice as fast as COO for the backward pass; torch flags its API as beta.
        warnings.simplefilter("ignore", UserWarning)
        return coo.to_sparse_csr()


class StructuredMean:
    """A mean aggregation on the *full* product graph S x X (node ``p = x * S + s``, every pair
    present) done on the factor graphs instead of a sparse matrix over all pairs: the same
    numbers, with far less memory traffic (about twice as fast per window on a CPU).

    ``kind``: ``"station"`` (mean over station neighbours within each source; ``matrix`` the
    dense ``[S, S]`` mean adjacency of S), ``"source"`` (mean over source neighbours within each
    station; ``matrix`` the sparse ``[X, X]`` mean adjacency of X) or ``"readin"`` (mean over all
    stations of each source, product -> source nodes; no matrix). Applied to ``y [P, W, F]``."""

    def __init__(self, kind: str, n_stations: int, n_sources: int, matrix: torch.Tensor | None = None):
        self.kind, self.n_stations, self.n_sources, self.matrix = kind, n_stations, n_sources, matrix

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        s, x = self.n_stations, self.n_sources
        if self.kind == "station":
            return torch.matmul(self.matrix, y.reshape(x, s, -1)).view(y.shape)
        if self.kind == "source":
            return torch.sparse.mm(self.matrix, y.reshape(x, -1)).view(y.shape)
        return y.view(x, s, *y.shape[1:]).mean(1)


class _SparseProduct(torch.autograd.Function):
    """``adj @ x`` whose backward uses a precomputed ``adj^T`` (torch's own backward of a CSR
    product transposes the matrix on every call, ten times the forward's cost)."""

    @staticmethod
    def forward(ctx, adj, adj_t, x):
        ctx.adj_t = adj_t
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx, grad):
        return None, None, torch.sparse.mm(ctx.adj_t, grad.contiguous())


class SparseMean:
    """A mean aggregation as a sparse CSR matrix ``[N_target, N_source]`` (from
    :func:`mean_adjacency`) with its transpose kept for the backward pass; applied to
    ``y [N_source, W, F] -> [N_target, W, F]``. Used on a sparse product graph."""

    def __init__(self, matrix: torch.Tensor):
        self.matrix = matrix
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self.transpose = matrix.to_sparse_coo().t().coalesce().to_sparse_csr()

    @property
    def shape(self):
        return self.matrix.shape

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        out = _SparseProduct.apply(self.matrix, self.transpose, y.reshape(y.shape[0], -1))
        return out.view(self.matrix.shape[0], *y.shape[1:])


def as_adjacency(edge_index, n_target: int, n_source: int | None = None):
    """``edge_index`` as a mean adjacency: sparse tensors, :class:`StructuredMean` and
    :class:`SparseMean` pass through, ``[2, E]`` index tensors are converted with
    :func:`mean_adjacency`."""
    if isinstance(edge_index, (StructuredMean, SparseMean)) or edge_index.is_sparse \
            or edge_index.layout == torch.sparse_csr:
        return edge_index
    return mean_adjacency(edge_index, n_target, n_source, device=edge_index.device)


def prelu_(act: nn.PReLU, x: torch.Tensor) -> torch.Tensor:
    """``act(x)``, overwriting ``x`` when no gradient is recorded: a single-slope PReLU is
    ``leaky_relu`` with that slope (the same numbers), which runs in place and, on a CPU, several
    times faster than the PReLU kernel on the product graph's activations."""
    if torch.is_grad_enabled() or act.weight.numel() != 1:
        return act(x)
    return torch.nn.functional.leaky_relu_(x, float(act.weight))


def _spmm(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``adj [N, M] @ x [M, W, F] -> [N, W, F]`` with the windows folded into the columns."""
    out = torch.sparse.mm(adj, x.reshape(x.shape[0], -1))
    return out.view(adj.shape[0], *x.shape[1:])


class _MeanConv(MessagePassing):
    """Shared plumbing: ``propagate`` with a sparse adjacency runs one sparse matrix product."""

    def __init__(self):
        super().__init__(aggr="add", node_dim=0)

    def message_and_aggregate(self, adj_t, x):
        return torch.sparse.mm(adj_t, x)

    def aggregate_mean(self, adj, x: torch.Tensor) -> torch.Tensor:
        """Mean over neighbours of ``x [N, W, F]`` (``adj`` from :func:`mean_adjacency`, or a
        :class:`StructuredMean` or :class:`SparseMean`)."""
        if isinstance(adj, (StructuredMean, SparseMean)):
            return adj(x)
        out = self.propagate(adj, x=x.reshape(x.shape[0], -1), size=(adj.shape[1], adj.shape[0]))
        return out.view(adj.shape[0], *x.shape[1:])


class ProductConv(_MeanConv):
    """One round of message passing on the product graph S x X.

    ``x' = PReLU(W0 x + W1 mean_{station edges}(x) + W2 mean_{source edges}(x))`` for
    ``x [P, W, in_channels] -> [P, W, out_channels]``: each (station, source) node hears the
    same source at neighbouring stations and neighbouring sources at the same station.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.lin_self = nn.Linear(in_channels, out_channels)
        self.lin_station = nn.Linear(in_channels, out_channels, bias=False)
        self.lin_source = nn.Linear(in_channels, out_channels, bias=False)
        self.act = nn.PReLU()
        self.reset_parameters()

    def reset_parameters(self):
        for lin in (self.lin_self, self.lin_station, self.lin_source):
            lin.reset_parameters()
        self.act.reset_parameters()

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, source_edge_index: torch.Tensor) -> torch.Tensor:
        """``edge_index``: station edges of the product graph; ``source_edge_index``: its source
        edges (each ``[2, E]`` or a mean adjacency)."""
        n, n_in = x.shape[0], x.shape[-1]
        station_adj, source_adj = as_adjacency(edge_index, n), as_adjacency(source_edge_index, n)
        # mean_j(W x_j) = W mean_j(x_j): aggregating the (narrower or equal) inputs and
        # accumulating the three products into one output moves far less memory than three
        # full-width products, two aggregations and two sums (the same numbers up to rounding).
        out = self.lin_self(x)
        flat = out.view(-1, out.shape[-1])
        # In place when inferring (no new full-width tensors); out of place when training, where
        # autograd would copy the whole output for each in-place update.
        accumulate = torch.Tensor.addmm_ if not torch.is_grad_enabled() else torch.addmm
        flat = accumulate(flat, self.aggregate_mean(station_adj, x).reshape(-1, n_in), self.lin_station.weight.T)
        flat = accumulate(flat, self.aggregate_mean(source_adj, x).reshape(-1, n_in), self.lin_source.weight.T)
        return prelu_(self.act, flat.view(out.shape))


class ReadIn(_MeanConv):
    """Product graph -> source graph: ``z_x = W2 PReLU(mean_s (W0 h_{s,x} + W1 r_{s,x}))``.

    ``r [P, pair_channels]`` are per-pair features (station minus source offset, scaled), the
    part of a per-edge network that does not depend on the window, so it is computed once.
    ``x [P, W, in_channels] -> [X, W, out_channels]``.
    """

    def __init__(self, in_channels: int, pair_channels: int, hidden_channels: int, out_channels: int):
        super().__init__()
        self.lin_node = nn.Linear(in_channels, hidden_channels)
        self.lin_pair = nn.Linear(pair_channels, hidden_channels, bias=False)
        self.act = nn.PReLU()
        self.lin_out = nn.Linear(hidden_channels, out_channels)
        self.reset_parameters()

    def reset_parameters(self):
        for module in (self.lin_node, self.lin_pair, self.act, self.lin_out):
            module.reset_parameters()

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor,
                n_sources: int | None = None) -> torch.Tensor:
        """``edge_index``: ``[2, P]`` (product node -> source node) or a ``[X, P]`` mean
        adjacency; ``edge_attr [P, pair_channels]``."""
        if n_sources is None:
            if isinstance(edge_index, StructuredMean):
                n_sources = edge_index.n_sources
            elif isinstance(edge_index, SparseMean):
                n_sources = edge_index.shape[0]
            else:
                n_sources = edge_index.shape[0] if edge_index.layout == torch.sparse_csr else int(edge_index[1].max()) + 1
        adj = as_adjacency(edge_index, n_sources, x.shape[0])
        # In place on the fresh product of lin_node: no second full-width tensor.
        h = prelu_(self.act, self.lin_node(x).add_(self.lin_pair(edge_attr)[:, None, :]))
        return self.lin_out(self.aggregate_mean(adj, h))


class SourceConv(_MeanConv):
    """Spatial message passing on the source graph X.

    ``z' = z + PReLU(W0 z + mean_j(W1 z_j) + W2 d)`` with ``d [X, 3]`` the mean offset of a
    node's neighbours (scaled km), which tells border nodes from interior ones.
    ``z [X, W, C] -> [X, W, C]`` (residual).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.lin_self = nn.Linear(channels, channels)
        self.lin_neighbour = nn.Linear(channels, channels, bias=False)
        self.lin_offset = nn.Linear(3, channels, bias=False)
        self.act = nn.PReLU()
        self.reset_parameters()

    def reset_parameters(self):
        for module in (self.lin_self, self.lin_neighbour, self.lin_offset, self.act):
            module.reset_parameters()

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        """``edge_index``: source edges ``[2, E]`` or mean adjacency; ``edge_attr [X, 3]``: mean
        neighbour offsets."""
        adj = as_adjacency(edge_index, x.shape[0])
        out = self.lin_self(x) + self.aggregate_mean(adj, self.lin_neighbour(x)) + self.lin_offset(edge_attr)[:, None, :]
        return x + prelu_(self.act, out)


def _scalar_encoding(values: torch.Tensor) -> torch.Tensor:
    """``[...] -> [..., 2]``: a scaled offset and its square, so attention can prefer small |d|."""
    return torch.stack([values, values * values], dim=-1)


class TemporalAttention(nn.Module):
    """Attention over origin-time offsets: the source embedding at a target time from the
    embeddings ``z [..., K, C]`` of windows whose origin times differ from it by ``dt [..., K]``
    (s, broadcastable). ``-> [..., C]``."""

    def __init__(self, channels: int, time_scale_s: float):
        super().__init__()
        self.time_scale_s = float(time_scale_s)
        self.lin_key = nn.Linear(channels + 2, channels)
        self.act = nn.PReLU()
        self.score = nn.Linear(channels, 1)
        self.lin_value = nn.Linear(channels + 2, channels)
        self.reset_parameters()

    def reset_parameters(self):
        for module in (self.lin_key, self.act, self.score, self.lin_value):
            module.reset_parameters()

    def forward(self, z: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        code = _scalar_encoding(dt / self.time_scale_s).to(z.dtype)
        code = code.expand(*z.shape[:-1], 2)
        inputs = torch.cat([z, code], dim=-1)
        weights = torch.softmax(self.score(self.act(self.lin_key(inputs))).squeeze(-1), dim=-1)
        return (weights.unsqueeze(-1) * self.lin_value(inputs)).sum(-2)


class QueryAttention(nn.Module):
    """Continuous query: a source embedding anywhere in space from the embeddings
    ``z [..., k, C]`` of its ``k`` nearest source nodes at relative positions
    ``offset [..., k, 3]`` (node minus query, scaled km). ``-> [..., C]``."""

    def __init__(self, channels: int):
        super().__init__()
        self.lin_key = nn.Linear(channels + 4, channels)
        self.act = nn.PReLU()
        self.score = nn.Linear(channels, 1)
        self.lin_value = nn.Linear(channels + 4, channels)
        self.reset_parameters()

    def reset_parameters(self):
        for module in (self.lin_key, self.act, self.score, self.lin_value):
            module.reset_parameters()

    def forward(self, z: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        offset = offset.to(z.dtype)
        geometry = torch.cat([offset, offset.square().sum(-1, keepdim=True)], dim=-1)
        inputs = torch.cat([z, geometry.expand(*z.shape[:-1], 4)], dim=-1)
        weights = torch.softmax(self.score(self.act(self.lin_key(inputs))).squeeze(-1), dim=-1)
        return (weights.unsqueeze(-1) * self.lin_value(inputs)).sum(-2)


class AssociationHead(nn.Module):
    """Scores each candidate pick against a source, for P and S, with a null option.

    The source embedding ``e [..., C]`` is read back to every station with the station's
    position relative to the source (``station_attr [..., S, A]``), giving a per-(source,
    station) context; each candidate pick (``pick_attr [..., S, M, F]``: residuals against the
    source's predicted P and S arrivals, their kernels, the pick's label) is scored in that
    context. Returns logits ``[..., S, M + 1, 2]`` where index ``M`` is "no pick" (null);
    candidates with ``valid`` False get ``-inf``. A softmax over axis -2 gives, per station and
    phase, the probability of each candidate and of none.
    """

    def __init__(self, channels: int, station_channels: int, pick_channels: int, hidden_channels: int):
        super().__init__()
        self.lin_source = nn.Linear(channels, hidden_channels)
        self.lin_station = nn.Linear(station_channels, hidden_channels, bias=False)
        self.act_context = nn.PReLU()
        self.lin_context = nn.Linear(hidden_channels, hidden_channels)
        self.lin_pick = nn.Linear(pick_channels, hidden_channels, bias=False)
        self.act_pick = nn.PReLU()
        self.score = nn.Linear(hidden_channels, 2)
        self.null = nn.Linear(hidden_channels, 2)
        self.reset_parameters()

    def reset_parameters(self):
        for module in (self.lin_source, self.lin_station, self.act_context, self.lin_context, self.lin_pick,
                       self.act_pick, self.score, self.null):
            module.reset_parameters()

    def forward(self, e: torch.Tensor, station_attr: torch.Tensor, pick_attr: torch.Tensor,
                valid: torch.Tensor) -> torch.Tensor:
        context = self.act_context(self.lin_source(e).unsqueeze(-2) + self.lin_station(station_attr))  # [..., S, H]
        hidden = self.act_pick(self.lin_context(context).unsqueeze(-2) + self.lin_pick(pick_attr))  # [..., S, M, H]
        logits = self.score(hidden).masked_fill(~valid.unsqueeze(-1), float("-inf"))
        return torch.cat([logits, self.null(context).unsqueeze(-2)], dim=-2)
