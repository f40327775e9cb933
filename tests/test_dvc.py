"""dvc.yaml: the params and metrics helpers (default tier), and a real `dvc repro` (marker dvc)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from simstudy import pipeline
from simstudy.store import read_manifest

ROOT = Path(__file__).resolve().parents[1]
#: The tiny study the pipeline runs: the smoke grid, the closed-form estimator only.
OVERRIDES = "+experiment=smoke executor=synchronous study.estimators=[ols_cc]"


def test_params_file_is_the_config_the_run_stores(run_cli, tmp_path, capsys):
    params = tmp_path / "study.params.yaml"
    overrides = [*OVERRIDES.split(), f"results_dir={tmp_path / 'results'}"]
    assert pipeline.main(["config", "--out", str(params), *overrides]) == 0
    written = yaml.safe_load(params.read_text())
    assert written["study"]["estimators"] == ["ols_cc"] and written["sampler"]["name"] == "chees"
    rc, out = run_cli(*OVERRIDES.split())
    assert rc == 0, out
    assert read_manifest(tmp_path / "results" / "missing_x_smoke").config == written
    study = tmp_path / "results" / "missing_x_smoke"
    assert pipeline.main(["metrics", str(study)]) == 0
    metrics = json.loads((study / "metrics.json").read_text())
    [(label, by_estimator)] = metrics.items()
    assert label == "N=100,missing_rate=0.3,mechanism=MAR"
    assert set(by_estimator["ols_cc"]) == {"y~1", "y~x", "y~z", "y~~y"}
    assert set(by_estimator["ols_cc"]["y~x"]) == set(pipeline.METRICS)


def test_helpers_refuse_bad_input(tmp_path, capsys):
    assert pipeline.main(["metrics", str(tmp_path)]) == 2
    assert "STUDY_DIR = " in capsys.readouterr().err
    assert pipeline.main(["config", "--out", str(tmp_path / "p.yaml"), "study.reps=0"]) == 2
    assert "study.reps" in capsys.readouterr().err and not (tmp_path / "p.yaml").exists()
    missing = tmp_path / "no-such-conf"  # a tree of only your own files is fine; none is not
    out = tmp_path / "p.yaml"
    assert pipeline.main(["config", "--config-dir", str(missing), "--out", str(out)]) == 2
    assert "--config-dir" in capsys.readouterr().err and not out.exists()


def _dvc(repo: Path, *args: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    return out


def _fresh_checkout(repo: Path) -> Path:
    """The repository's files as a fresh clone has them (.gitignore included), committed."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file() and not name.startswith(("docs/", "benchmarks/")):
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "clone"], cwd=repo, check=True)
    return repo


@pytest.mark.dvc
def test_dvc_repro_runs_the_pipeline_and_resumes_a_changed_design(tmp_path):
    if not (Path(sys.executable).parent / "dvc").exists():
        pytest.skip("dvc is not installed (pip install -e '.[test]')")
    repo = _fresh_checkout(tmp_path / "project")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["study"]["overrides"] = OVERRIDES
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    # no `dvc init`: .dvc/ is committed, and the README's words are `dvc repro`

    out = _dvc(repo, "repro")
    study = repo / "results" / params["study"]["name"]
    assert "2 batches to run, 0 finished earlier" in out, out
    for name in ("summary.parquet", "metrics.json", "report.html", "report.md", "manifest.json"):
        assert (study / name).is_file(), name
    assert list((study / "figures").glob("*.png"))
    shown = _dvc(repo, "plots", "show", "--json")
    assert "/figures/" in shown and ".png" in shown and '"errors"' not in shown, shown
    assert "up to date" in _dvc(repo, "status")
    batches = sorted((study / "replications").glob("*/batch-*.parquet"))
    assert len(batches) == 2
    before = {p: p.stat().st_mtime_ns for p in batches}

    params["study"]["overrides"] = OVERRIDES + " 'study.factors.N=[100,200]'"
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    out = _dvc(repo, "repro")
    assert "2 conditions × 4 reps × 1 estimators; 2 batches to run, 2 finished earlier" in out
    assert {p: p.stat().st_mtime_ns for p in batches} == before  # the old condition untouched
    assert len(list((study / "replications").glob("*/batch-*.parquet"))) == 4
    composed = yaml.safe_load((repo / "params.resolved.yaml").read_text())
    assert composed["study"]["factors"]["N"] == [100, 200]  # the params the run stage tracks
    metrics = json.loads((study / "metrics.json").read_text())
    assert sorted(metrics) == [
        "N=100,missing_rate=0.3,mechanism=MAR",
        "N=200,missing_rate=0.3,mechanism=MAR",
    ]
    out = _dvc(repo, "repro")
    assert "Running stage" not in out and "didn't change, skipping" in out, out
