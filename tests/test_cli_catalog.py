"""The command line tells what exists: list, show, --version, --config-dir, mapping overrides."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from simstudy import __version__
from simstudy.cli import PACKAGE_CONF, main
from simstudy.compose import replace_mappings


def test_version_and_help_are_for_users(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"simstudy {__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "Monte Carlo simulation studies" in text
    for command in ("run", "show", "list", "aggregate", "fit", "status", "replay"):
        assert command in text
    assert "examples:" in text and "--config-dir" in text


def test_list_names_every_model_study_estimator_and_sampler(tmp_path, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("regression_missing", "latent_interaction", "cfa", "missing_x", "cfa_ordinal"):
        assert name in out
    for name in ("bayes_fiml_marginal", "fs_imputation", "sum_score_ols", "chees", "gibbs"):
        assert name in out
    # a spec config's estimators, named by its config: what each is and the samplers it takes
    assert "imputation from bayes's chains" in out
    lines = out.splitlines()
    rows = [line.split() for line in lines if line.startswith("model=latent_interaction ")]
    assert [r[1] for r in rows] == ["bayes", "fs_imputation", "sum_score_ols"]
    # A variant config that names no model itself is listed under the model it extends.
    mine = tmp_path / "conf"
    shutil.copytree(PACKAGE_CONF, mine)
    variant = "defaults:\n  - cfa\n  - _self_\n\nparams:\n  loading: 0.5\n"
    (mine / "model" / "cfa_weak.yaml").write_text(variant)
    assert main(["--config-dir", str(mine), "list", "models"]) == 0
    assert "model=cfa, model=cfa_weak" in capsys.readouterr().out
    assert main(["list", "samplers"]) == 0
    out = capsys.readouterr().out
    assert "nuts" in out and "missing_x" not in out
    assert main(["list", "recipes"]) == 2
    assert "simstudy list = 'recipes'" in capsys.readouterr().err


def test_show_prints_config_grid_and_cost_and_runs_nothing(tmp_path, capsys):
    rc = main(["show", f"results_dir={tmp_path}", "study.factors.N=[100,250]", "study.reps=10"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "name: missing_x" in out  # the composed config
    assert "design grid: 4 conditions" in out
    for n in ("100", "250"):
        assert n in out
    assert "fits: 160 (4 estimators)" in out
    assert "compiled programs: 12" in out  # 4 conditions × 3 sampled estimators
    assert "not known before a run" in out
    assert not any(tmp_path.iterdir())  # nothing written
    assert main(["show", "study.reps=0"]) == 2


def test_a_whole_mapping_can_be_replaced_in_the_plain_form():
    assert replace_mappings(["a=1", "m.f={x:[1]}", "+n={y:2}"]) == [
        "a=1",
        "~m.f",
        "+m.f={x:[1]}",
        "+n={y:2}",
    ]


def test_a_bad_mapping_override_says_what_to_type(tmp_path, capsys):
    assert main(["run", f"results_dir={tmp_path}", "study.nothing={a: 1}"]) == 2
    err = capsys.readouterr().err
    assert "study.nothing={a: 1}" in err and "KEY={a: 1, b: 2}" in err


def test_config_dir_is_explicit(tmp_path, capsys, monkeypatch):
    mine = tmp_path / "myconf"
    shutil.copytree(PACKAGE_CONF, mine)
    (mine / "study" / "mine.yaml").write_text(
        (PACKAGE_CONF / "study" / "missing_x.yaml")
        .read_text()
        .replace("name: missing_x", "name: mine")
    )
    assert main(["--config-dir", str(mine), "list", "studies"]) == 0
    assert "mine" in capsys.readouterr().out
    # a conf/ in the working directory is not picked up unless named
    monkeypatch.chdir(tmp_path)
    shutil.copytree(mine, tmp_path / "conf")
    assert main(["list", "studies"]) == 0
    captured = capsys.readouterr()
    assert "mine" not in captured.out
    assert "pass --config-dir conf to use ./conf" in captured.err
    assert main(["--config-dir", "conf", "list", "studies"]) == 0
    assert "mine" in capsys.readouterr().out
    assert main(["--config-dir", str(tmp_path / "nowhere"), "list"]) == 2


def test_console_script_has_the_new_commands():
    exe = Path(sys.executable).with_name("simstudy")
    out = subprocess.run([str(exe), "list", "executors"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "synchronous" in out.stdout
