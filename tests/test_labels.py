import numpy as np
import pytest
import torch

from genie.labels import candidate_targets, source_labels


def test_source_labels_gaussian_in_space_and_time():
    nodes = torch.tensor([[0.0, 0, 5], [15.0, 0, 5], [100.0, 0, 5]])
    events = torch.tensor([[0.0, 0, 5], [100.0, 0, 5]])
    times = torch.tensor([50.0, 50.0], dtype=torch.float64)
    lab = source_labels(nodes, torch.tensor([50.0, 56.5], dtype=torch.float64), events, times, 15.0, 6.5,
                        inside=torch.tensor([True, False]))
    assert lab[0, 0].item() == pytest.approx(1.0)
    assert lab[0, 1].item() == pytest.approx(np.exp(-0.5))  # one sigma in space
    assert lab[1, 0].item() == pytest.approx(np.exp(-0.5))  # one sigma in time
    assert lab[0, 2].item() < 1e-9  # the event in the padding does not count
    empty = source_labels(nodes, torch.tensor([0.0]), torch.zeros((0, 3)), torch.zeros(0), 15.0, 6.5)
    assert empty.shape == (1, 3) and empty.sum() == 0


def test_source_labels_per_window_points_and_events():
    events = torch.tensor([[0.0, 0, 5]])
    points = torch.tensor([[[0.0, 0, 5], [15.0, 0, 5]], [[0.0, 0, 5], [0.0, 0, 5]]])
    times = torch.tensor([[10.0, 10.0], [10.0, 16.5]], dtype=torch.float64)
    lab = source_labels(points, times, events, torch.tensor([10.0], dtype=torch.float64), 15.0, 6.5,
                        inside=torch.tensor([[True], [True]]))
    assert lab.numpy() == pytest.approx(np.array([[1.0, np.exp(-0.5)], [1.0, np.exp(-0.5)]]), rel=1e-5)
    hidden = source_labels(points, times, events, torch.tensor([10.0], dtype=torch.float64), 15.0, 6.5,
                           inside=torch.tensor([[True], [False]]))
    assert hidden[1].sum() == 0 and hidden[0, 0] == pytest.approx(1.0)


def test_candidate_targets():
    pick_event = torch.tensor([0, 0, 1, -1])
    pick_phase = torch.tensor([0, 1, 0, 0])
    # two sources (events 0 and 1), one station, three candidate slots
    candidates = torch.tensor([[[3, 1, 0]], [[0, 2, 1]]])
    valid = torch.tensor([[[True, True, True]], [[True, True, False]]])
    targets = candidate_targets(candidates, valid, pick_event, pick_phase, torch.tensor([[0], [1]]))
    assert targets.tolist() == [[[2, 1]], [[1, 3]]]  # event 1 has no S candidate: null slot 3
    none = candidate_targets(candidates, valid, pick_event, pick_phase, torch.tensor([[-1], [-1]]))
    assert (none == 3).all()
