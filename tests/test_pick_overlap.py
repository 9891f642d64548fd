import numpy as np
import pytest

from catalogs.pick_overlap import error_tables, match_by_picks, overlap_scores


def test_sixty_percent_of_the_larger_set_decides_a_match():
    # True event 0 has 10 picks, 1 has 5, 2 has 4; picks 19-20 are false.
    true = np.array([0] * 10 + [1] * 5 + [2] * 4 + [-1, -1])
    pred = np.full(len(true), -1)
    pred[:6] = 0          # 6 of event 0's 10 picks: 6 >= 0.6 * 10, a match
    pred[10:12] = 1       # 2 of event 1's 5 picks plus 2 false picks: 2 < 0.6 * 5
    pred[19:21] = 1
    pred[15:19] = 2       # all 4 picks of event 2
    pred[14] = 2          # ... and one of event 1: 4 of 5 picks shared, 4 >= 0.6 * 5
    pairs = match_by_picks(true, pred)
    assert pairs[["pred_event", "true_event", "shared", "n_pred", "n_true"]].values.tolist() == [
        [0, 0, 6, 6, 10], [2, 2, 4, 5, 4]]
    scores = overlap_scores(true, pred)
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    # Correct picks: 6 (event 0) + 4 (event 2) of 15 assigned and of 19 true picks.
    assert scores["pick_precision"] == pytest.approx(10 / 15) and scores["pick_recall"] == pytest.approx(10 / 19)


def test_counted_events_limit_recall_but_not_precision():
    true = np.array([0, 0, 0, 1, 1, 1, 2])
    pred = np.array([5, 5, 5, -1, -1, -1, 7])
    scores = overlap_scores(true, pred, counted=np.array([True, True, False]))
    assert scores["recall"] == pytest.approx(0.5) and scores["precision"] == pytest.approx(1.0)
    assert scores["pick_recall"] == pytest.approx(3 / 6) and scores["pick_precision"] == pytest.approx(1.0)


def test_nothing_associated_and_bad_fraction():
    scores = overlap_scores(np.array([0, 0, -1]), np.array([-1, -1, -1]))
    assert scores["precision"] == 1.0 and scores["recall"] == 0.0 and scores["n_matched"] == 0
    with pytest.raises(ValueError, match="min_fraction"):
        match_by_picks([0], [0], min_fraction=0.5)


def test_error_tables_say_what_false_and_missed_events_are_made_of():
    """True events 0 (6 picks) and 1 (4 picks), 2 false picks. Predicted event 0 takes five
    picks of event 0 (a match), predicted 1 takes event 0's sixth pick, two of event 1's and a
    false pick (no match: two sources, mostly event 1, which no prediction matches); event 1 is
    missed, its two other picks unassigned."""
    true = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, -1, -1])
    pred = np.array([0, 0, 0, 0, 0, 1, 1, 1, -1, -1, 1, -1])
    false, missed = error_tables(true, pred)
    assert false.to_dict("records") == [{"pred_event": 1, "n_picks": 4, "n_false": 1, "n_sources": 2,
                                         "main_event": 1, "main_shared": 2, "main_size": 4, "main_matched": False}]
    assert missed.to_dict("records") == [{"true_event": 1, "n_picks": 4, "n_assigned": 2, "n_holders": 1,
                                          "main_holder": 1, "main_shared": 2}]
    # Nothing assigned: every counted event missed with no holder, no false event.
    false, missed = error_tables(true, np.full(len(true), -1), counted=np.array([True, False]))
    assert len(false) == 0 and missed["true_event"].tolist() == [0] and missed["main_holder"].tolist() == [-1]
