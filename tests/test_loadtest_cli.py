"""`crossroads loadtest`: its options, its help, and its exit codes (which check broke is said)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed import cli
from testbed.commands import loadtest as command
from testbed.loadtest import LOCUSTFILE, LoadtestResult, LoadtestRun

ROOT = Path(__file__).resolve().parents[1]


def _parse(*argv: str) -> object:
    return cli.build_parser().parse_args(["loadtest", *argv])


def test_the_options_reach_the_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[LoadtestRun] = []

    def fake(run: LoadtestRun) -> LoadtestResult:
        seen.append(run)
        summary = {"overall": dict.fromkeys(("requests", "failures", "per_s", "p50_ms", "p99_ms", "acknowledged"), 0)}
        return LoadtestResult(True, (), {**summary, "guarantees": []}, run.out)

    monkeypatch.setattr(command, "run_loadtest", fake)
    args = _parse("s.yaml", "--out", str(tmp_path), "--users", "7", "--rate", "50", "--duration", "2min",
                  "--processes", "2", "--locust=--master", "--quiet")  # fmt: skip
    assert args.func(args) == 0  # type: ignore[attr-defined]
    run = seen[0]
    assert (run.users, run.rate, run.duration, run.processes) == (7, 50.0, 120.0, 2)
    assert run.locust_args == ("--master",) and not run.progress


def test_a_broken_guarantee_exits_1_and_names_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "audit verify passes"
    broken = {"name": name, "ok": False, "detail": "leaf 3 does not match its hash"}
    summary = {"overall": dict.fromkeys(("requests", "failures", "per_s", "p50_ms", "p99_ms", "acknowledged"), 1)}
    result = LoadtestResult(False, (name,), {**summary, "guarantees": [broken]}, tmp_path)
    monkeypatch.setattr(command, "run_loadtest", lambda run: result)
    args = _parse("s.yaml", "--out", str(tmp_path))
    assert args.func(args) == 1  # type: ignore[attr-defined]
    assert "BROKEN: audit verify passes: leaf 3 does not match its hash" in capsys.readouterr().err


def test_a_wrong_scenario_exits_2_before_anything_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("world: {seed: 1, persons: 10, employers: 1}\nloadtest: {mix: {agency: {CONSULTATION: 1}}}\n")
    args = _parse(str(bad), "--out", str(tmp_path / "run"))
    assert args.func(args) == 2  # type: ignore[attr-defined]
    assert "bad.yaml: loadtest.stages: missing" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_help_says_how_to_run_workers_on_other_machines(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse("--help")
    text = capsys.readouterr().out
    assert "--processes" in text and "--master" in text and "--worker --master-host" in text
    assert LOCUSTFILE.is_file() and LOCUSTFILE.parent == ROOT / "loadtests"
