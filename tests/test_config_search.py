"""A user's config tree holds only the user's files; the package's conf/ supplies the rest."""

import shutil

import pytest

from simstudy.cli import PACKAGE_CONF, main

#: A small study of the user's own, of a model shipped with simstudy.
TINY = """\
defaults:
  - override /model@_global_.model: regression_missing
name: tiny_own
reps: 3
seed: 7
level: 0.95
estimators: [ols_cc]
factors:
  N: [40]
  missing_rate: [0.2]
  mechanism: [MCAR]
exclude: []
max_failure_rate: 0.5
min_reps_for_stop: 10
target: null
"""


@pytest.fixture
def own(tmp_path):
    """A config tree with nothing but ``study/tiny.yaml``."""
    tree = tmp_path / "own"
    (tree / "study").mkdir(parents=True)
    (tree / "study" / "tiny.yaml").write_text(TINY)
    return tree


def test_a_tree_of_only_the_users_study_composes_with_the_shipped_model(own, tmp_path, capsys):
    results = tmp_path / "results"
    rc = main(["--config-dir", str(own), "show", "study=tiny", f"results_dir={results}"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "name: tiny_own" in out and "name: regression_missing" in out
    assert f"composed config ({own}, then {PACKAGE_CONF})" in out
    assert "design grid: 1 conditions" in out
    assert not results.exists()
    # listed beside the shipped studies, and an unknown one names both trees' options
    assert main(["--config-dir", str(own), "list", "studies"]) == 0
    out = capsys.readouterr().out
    assert "tiny_own" not in out and "tiny " in out and "missing_x " in out
    assert main(["--config-dir", str(own), "show", "study=nope"]) == 2
    err = capsys.readouterr().err
    assert "study = 'nope'" in err and "tiny" in err and "missing_x" in err


def test_the_users_file_wins_over_the_shipped_one_of_the_same_name(own, capsys, monkeypatch):
    (own / "sampler").mkdir()
    nuts = (PACKAGE_CONF / "sampler" / "nuts.yaml").read_text()
    assert "warmup: 500" in nuts
    (own / "sampler" / "nuts.yaml").write_text(nuts.replace("warmup: 500", "warmup: 77"))
    monkeypatch.setenv("SIMSTUDY_CONFIG_DIR", str(own))  # the variable works as --config-dir
    assert main(["show", "study=tiny", "sampler=nuts"]) == 0
    out = capsys.readouterr().out
    assert "warmup: 77" in out and "name: tiny_own" in out
    assert main(["list", "samplers"]) == 0
    assert "warmup=77" in capsys.readouterr().out
    # a full copy of conf/ keeps working, its files winning
    full = own.parent / "full"
    shutil.copytree(PACKAGE_CONF, full)
    (full / "study" / "missing_x.yaml").write_text(
        (PACKAGE_CONF / "study" / "missing_x.yaml").read_text().replace("reps: 100", "reps: 13")
    )
    assert main(["--config-dir", str(full), "show"]) == 0
    out = capsys.readouterr().out
    assert "reps: 13" in out and "warmup: 77" not in out


@pytest.mark.parametrize("how", ["option", "variable"])
def test_a_config_dir_that_is_not_there_exits_2_naming_it(tmp_path, capsys, monkeypatch, how):
    missing = tmp_path / "nowhere"
    if how == "option":
        rc = main(["--config-dir", str(missing), "show"])
    else:
        monkeypatch.setenv("SIMSTUDY_CONFIG_DIR", str(missing))
        rc = main(["show"])
    assert rc == 2
    err = capsys.readouterr().err
    field = "--config-dir" if how == "option" else "SIMSTUDY_CONFIG_DIR"
    assert field in err and str(missing) in err and "an existing directory" in err
