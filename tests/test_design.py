from simstudy.design import (
    batches,
    condition_id,
    expand_grid,
    padded_lanes,
    rep_seed,
    seed_words,
)


def test_grid_crosses_levels_in_order():
    grid = expand_grid({"N": [100, 200], "mechanism": ["MCAR", "MAR"]})
    assert grid == [
        {"N": 100, "mechanism": "MCAR"},
        {"N": 100, "mechanism": "MAR"},
        {"N": 200, "mechanism": "MCAR"},
        {"N": 200, "mechanism": "MAR"},
    ]


def test_exclude_drops_matching_combinations_only():
    factors = {"missing_rate": [0.0, 0.3], "mechanism": ["MCAR", "MAR"], "N": [50, 100]}
    grid = expand_grid(factors, exclude=[{"missing_rate": 0.0, "mechanism": "MAR"}])
    assert len(grid) == 6
    assert not any(c["missing_rate"] == 0.0 and c["mechanism"] == "MAR" for c in grid)
    assert {"missing_rate": 0.0, "mechanism": "MCAR", "N": 50} in grid


def test_condition_id_stable_when_a_level_is_added():
    before = {condition_id(c) for c in expand_grid({"N": [100, 200], "rate": [0.1]})}
    after = {condition_id(c) for c in expand_grid({"N": [100, 200, 400], "rate": [0.1, 0.5]})}
    assert before < after
    assert len(after) == 6


def test_condition_id_ignores_key_order_but_not_values():
    a = condition_id({"N": 100, "mechanism": "MAR"})
    assert a == condition_id({"mechanism": "MAR", "N": 100})
    assert a != condition_id({"N": 101, "mechanism": "MAR"})
    assert condition_id({"N": 100}) == condition_id({"N": 100.0})
    assert len(a) == 12


def test_rep_seed_depends_only_on_study_seed_condition_and_rep():
    s = rep_seed(1, "abcdef012345", 3)
    assert s == rep_seed(1, "abcdef012345", 3)
    others = {
        rep_seed(2, "abcdef012345", 3),
        rep_seed(1, "abcdef012346", 3),
        rep_seed(1, "abcdef012345", 4),
    }
    assert s not in others and len(others) == 3
    assert 0 <= s < 2**63
    hi, lo = seed_words(s)
    assert (hi << 32) | lo == s


def test_padded_lanes_count_the_wasted_sampling():
    assert padded_lanes(48, 16, 16) == 0
    assert padded_lanes(50, 16, 16) == 14  # batches 16, 16, 16, 2
    assert padded_lanes(20, 10, 8) == 12  # two batches of 10: groups 8 + 2 (padded to 8)
    assert padded_lanes(50, 16, 1) == 0


def test_batches_cover_reps_once():
    assert batches(7, 3) == [(0, 0, 3), (1, 3, 6), (2, 6, 7)]
    covered = [r for _, a, b in batches(100, 7) for r in range(a, b)]
    assert covered == list(range(100))
