"""A user's own spec model in the user's own config tree (``--config-dir``)."""

import shutil
from pathlib import Path

import pytest

from simstudy.cli import PACKAGE_CONF, compose_raw, main
from simstudy.config import config_hash, plan_from_dict
from simstudy.models import model_infos

MY_MODEL = """\
name: my_model
syntax: |
  y ~ 1 + b*x + (1 | school)
params: {y~1: 0.0, b: 0.4, y~~y: 1.0, "1|school~~1|school": 0.2}
priors: {coef_sd: 10.0}
"""


@pytest.fixture
def my_conf(tmp_path, monkeypatch):
    conf = tmp_path / "my_conf"
    shutil.copytree(PACKAGE_CONF, conf)
    (conf / "model" / "my_model.yaml").write_text(MY_MODEL)
    monkeypatch.setenv("SIMSTUDY_CONFIG_DIR", str(conf))
    return conf


OVERRIDES = [
    "model=my_model",
    "study.estimators=[bayes]",
    "sampler=gibbs",
    "study.factors={J: [20], cluster_size: [5]}",
]


def test_user_spec_runs_from_own_config_dir_and_its_syntax_enters_the_hash(my_conf, capsys):
    rc = main(["--config-dir", str(my_conf), "show", *OVERRIDES])
    assert rc == 0, capsys.readouterr().err
    assert "my_model" in capsys.readouterr().out
    first = plan_from_dict(compose_raw(OVERRIDES), model_infos())
    changed = MY_MODEL.replace("(1 | school)", "(1 + x | school)").replace(
        "params: {", 'params: {"x|school~~x|school": 0.1, "1|school~~x|school": 0.0, '
    )
    (my_conf / "model" / "my_model.yaml").write_text(changed)
    second = plan_from_dict(compose_raw(OVERRIDES), model_infos())
    assert config_hash(first.numbers_config()) != config_hash(second.numbers_config())
    assert "1 + x | school" in second.model.structure["syntax"]


def test_a_bad_population_value_exits_2_naming_it(my_conf, capsys):
    (my_conf / "model" / "my_model.yaml").write_text(MY_MODEL.replace("b: 0.4, ", ""))
    rc = main(["show", *OVERRIDES])
    assert rc == 2
    assert "model.params.b" in capsys.readouterr().err
    assert Path(my_conf).is_dir()
