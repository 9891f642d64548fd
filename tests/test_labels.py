import numpy as np
import pytest
import torch

from genie.labels import association_labels, source_labels


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


def test_association_labels():
    lab = association_labels(np.array([0, 0, 1, -1]), np.array([0, 1, 0, 0]), np.array([0, 1, -1]))
    assert lab.shape == (3, 4, 2)
    assert lab[0].tolist() == [[True, False], [False, True], [False, False], [False, False]]
    assert lab[1, 2].tolist() == [True, False] and not lab[2].any()
