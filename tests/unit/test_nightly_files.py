"""The nightly workflow and script are well-formed and run what the README says."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).parents[2]


def test_nightly_workflow_has_the_expected_jobs() -> None:
    wf = yaml.safe_load((ROOT / ".github/workflows/nightly.yml").read_text())
    assert set(wf["jobs"]) == {"fuzz", "summary"}
    fuzz = wf["jobs"]["fuzz"]
    assert fuzz["strategy"]["matrix"]["shard"] == [1, 2, 3, 4]
    assert fuzz["strategy"]["matrix"]["pg"] == [15, 16, 17, 18]  # every supported major, nightly
    assert set(fuzz["strategy"]["matrix"]["profile"]) == {"ci", "nightly"}
    run = "\n".join(s.get("run", "") for s in fuzz["steps"])
    assert "redodiff fuzz" in run and "--shard" in run and "--junit" in run and "--engine walredo" in run
    assert '--pg "${{ matrix.pg }}"' in run
    uploads = [s for s in fuzz["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["if"] == "always()"
    summary = wf["jobs"]["summary"]
    assert summary["needs"] == "fuzz" and summary["if"] == "always()"
    srun = "\n".join(s.get("run", "") for s in summary["steps"])
    assert "redodiff merge" in srun and "redodiff report" in srun
    # the schedule key is `on` (YAML 1.1 reads it as True)
    triggers = wf.get("on", wf.get(True))
    assert "schedule" in triggers and "workflow_dispatch" in triggers


def test_nightly_script_is_executable_and_uses_the_same_commands() -> None:
    script = ROOT / "ci/nightly.sh"
    assert script.stat().st_mode & 0o111
    text = script.read_text()
    for cmd in ("./dev setup", "redodiff fuzz", "--shard", "redodiff merge", "redodiff report"):
        assert cmd in text


def test_tox_declares_the_envs() -> None:
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "tox.ini")
    envs = {s.removeprefix("testenv:") for s in cfg.sections() if s.startswith("testenv:")} | {"py"}
    assert {"py", "lint", "type", "fuzz", "bench"} <= envs
    assert "redodiff fuzz" in cfg["testenv:fuzz"]["commands"]
    assert "pytest" in cfg["testenv"]["commands"]
