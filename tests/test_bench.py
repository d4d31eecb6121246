"""The benchmarks run and report what they promise (shapes, both paths served, same work): never their speed.

Also the audit log's performance work, held to the results it had: the root after batches of
every size, and appends gathered under concurrent load.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from crossroads.audit import AuditLog, verify_store
from crossroads.merkle import LeafHash, leaf_hashes, root
from crossroads.methods import EXCHANGE
from loadtests.loadgen import read_requests
from protos import messages_pb2
from scenarios.shipped import default_scenario
from testbed.bench import core as bc
from testbed.bench.audit import synthetic_records
from testbed.bench.goals import BenchError
from testbed.bench.performance import MARKER, update_performance
from testbed.cli import main

HEADLINE = ["core_rps", "proxy_rps", "ratio", "core_p50_ms", "core_p99_ms", "proxy_p50_ms", "proxy_p99_ms", "runs"]
SMOKE = ["--seconds", "0.5", "--warmup", "0.5", "--runs", "1", "--concurrency", "4", "--requests", "40"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """One tiny `crossroads bench core` run: its output folder and its stdout lines."""
    out = tmp_path_factory.mktemp("bench") / "run"
    capture = out.parent / "stdout.txt"
    with capture.open("w") as sink, contextlib.redirect_stdout(sink):
        code = main(["bench", "core", "--out", str(out), *SMOKE])
    assert code == 0
    return out, capture.read_text().splitlines()


def test_bench_core_ends_with_one_json_line_of_the_headline_figures(smoke: tuple[Path, list[str]]) -> None:
    _, lines = smoke
    last = json.loads(lines[-1])
    assert list(last)[: len(HEADLINE)] == HEADLINE
    assert last["runs"] == 1 and last["concurrency"] == 4
    assert last["ratio"] == pytest.approx(last["core_rps"] / last["proxy_rps"], abs=1e-3)
    assert any(line.startswith("ratio core/proxy") for line in lines[:-1])  # the summary for people comes first


def test_bench_core_serves_both_paths_and_the_core_delivers_every_consultation(smoke: tuple[Path, list[str]]) -> None:
    out, _ = smoke
    figures = json.loads((out / "bench_core.json").read_text())
    assert figures["core_ok"] > 0 and figures["proxy_ok"] > 0
    assert figures["core_errors"] == 0 and figures["proxy_errors"] == 0
    assert set(figures["audit_outcomes"]) == {"DELIVERED"}  # audited, authorized, routed: every one
    assert sum(figures["audit_outcomes"].values()) >= figures["core_ok"]
    assert [len(figures["each"][path]) for path in ("core", "proxy")] == [1, 1]
    for run in figures["each"]["core"] + figures["each"]["proxy"]:
        assert run["server_cpu_us"] > 0 and run["calls"] >= run["ok"]


def test_the_proxy_gets_the_very_forward_the_core_sends(smoke: tuple[Path, list[str]]) -> None:
    out, _ = smoke
    core = read_requests(out / "requests.core.jsonl")
    proxy = read_requests(out / "requests.proxy.jsonl")
    assert len(core) == len(proxy) == 40
    for envelope, forward in zip(core, proxy, strict=True):
        wrapped = messages_pb2.Forward.FromString(forward.body)
        assert (envelope.method, forward.method) == (EXCHANGE, "/crossroads.v1.Agency/Deliver")
        assert wrapped.envelope == envelope.body  # the same bytes, untouched
        assert wrapped.sender == envelope.identity == forward.identity  # the same sender on both paths
        assert wrapped.agency  # routed to one agency


def test_the_config_refuses_what_cannot_run(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        bc.CoreBenchConfig(out=tmp_path, scenario=default_scenario(), concurrency=0)
    with pytest.raises(ValueError, match="seconds"):
        bc.CoreBenchConfig(out=tmp_path, scenario=default_scenario(), seconds=0)


def test_bench_without_a_benchmark_prints_its_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench"]) == 2
    assert "core" in capsys.readouterr().out


def test_bench_core_help_names_every_figure_and_the_goal(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "core", "--help"])
    text = capsys.readouterr().out
    for figure in (*HEADLINE, "goal >= 0.8"):
        assert figure in text


def test_bench_audit_reports_each_figure_against_its_goal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--appends", "3000", "--verify", "2000", "--concurrency", "100", "--runs", "1"]
    assert main(["bench", "audit", "--out", str(tmp_path), *args]) == 0
    last = json.loads(capsys.readouterr().out.splitlines()[-1])
    modes = {f"audit_{mode}_appends_per_s" for mode in ("sync", "async", "many")}
    assert set(last) == modes | {"audit_verify_s"}
    figures = json.loads((tmp_path / "bench_audit.json").read_text())
    assert figures["appends"]["records"] == 3000 and figures["verify"]["records"] == 2000
    goals = figures["goals"]
    assert all(goals[mode]["value"] > 0 for mode in modes)
    assert goals["audit_verify_s"] == {
        "value": pytest.approx(figures["verify"]["verify_seconds"], abs=1e-3),
        "goal": "<= 5",
        "met": True,
    }
    assert not list(tmp_path.glob("bench-audit-*"))  # its logs are removed


def test_bench_world_builds_in_a_fresh_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "world", "--out", str(tmp_path), "--scenario", str(default_scenario())]) == 0
    figures = json.loads((tmp_path / "bench_world.json").read_text())
    assert figures["runs"] == 1 and figures["each"][0]["agencies"] == 3000
    assert set(figures["goals"]) == {"world_seconds", "world_peak_rss_mb"}
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["world_peak_rss_mb"] > 0


# ------------------------------------------------------------------ the audit log's performance work


def test_the_root_after_batches_of_every_size_is_the_rfc6962_root(tmp_path: Path) -> None:
    records = next(synthetic_records(1500, seed=3, batch=1500))
    rng = np.random.default_rng(7)
    hashes: list[LeafHash] = []
    with AuditLog.open(tmp_path) as log:
        while len(hashes) < len(records):
            size = int(rng.choice([1, 2, 3, 7, 100, 255, 256, 257, 600]))
            chunk = records[len(hashes) : len(hashes) + size]
            log.append_batch_sync(chunk)
            hashes += leaf_hashes(r.leaf_bytes() for r in chunk)
            assert log.head().root == root(hashes), len(hashes)
    with AuditLog.open(tmp_path) as reopened:  # the tail of a partial tile is restored too
        assert reopened.head().root == root(hashes)
        reopened.append_batch_sync(records[:5])
        assert reopened.head().root == root(hashes + leaf_hashes(r.leaf_bytes() for r in records[:5]))
    assert verify_store(tmp_path).ok


def test_appends_gathered_under_concurrent_load_keep_order_and_durability(tmp_path: Path) -> None:
    records = next(synthetic_records(3000, seed=4, batch=3000))

    async def load(log: AuditLog) -> list[int]:
        async def one(k: int) -> int:
            await asyncio.sleep(k * 0.0002)  # appends arrive over time, as from a busy core
            return await log.append(records[k])

        return list(await asyncio.gather(*(one(k) for k in range(len(records)))))

    with AuditLog.open(tmp_path) as log:
        indices = asyncio.run(load(log))
    assert sorted(indices) == list(range(len(records)))
    with AuditLog.open(tmp_path, read_only=True) as reread:
        leaves = dict(reread.iter_leaves())
    assert all(leaves[i] == records[k].leaf_bytes() for k, i in enumerate(indices))
    assert verify_store(tmp_path).ok


def test_append_many_gives_each_batch_consecutive_indices_once_durable(tmp_path: Path) -> None:
    records = next(synthetic_records(450, seed=5, batch=450))
    batches = [records[0:200], records[200:201], records[201:450]]

    async def load(log: AuditLog) -> tuple[list[list[int]], list[int]]:
        many = await asyncio.gather(*(log.append_many(batch) for batch in batches))
        return list(many), await log.append_many([])

    with AuditLog.open(tmp_path) as log:
        many, empty = asyncio.run(load(log))
    assert empty == []
    assert sorted(i for indices in many for i in indices) == list(range(450))
    with AuditLog.open(tmp_path, read_only=True) as reread:
        leaves = dict(reread.iter_leaves())
    for batch, indices in zip(batches, many, strict=True):
        assert indices == list(range(indices[0], indices[0] + len(batch)))  # consecutive, in order
        assert [leaves[i] for i in indices] == [r.leaf_bytes() for r in batch]


def test_paired_ratios_set_each_core_run_against_the_proxy_run_beside_it() -> None:
    each = {
        "proxy": [{"rps": 1000.0}, {"rps": 500.0}, {"rps": 0.0}],
        "core": [{"rps": 800.0}, {"rps": 450.0}, {"rps": 300.0}],  # the last proxy run served nothing
    }
    assert bc.paired_ratios(each) == [0.8, 0.9]


def test_the_figures_carry_the_paired_ratios(smoke: tuple[Path, list[str]]) -> None:
    out, lines = smoke
    figures = json.loads((out / "bench_core.json").read_text())
    (run,) = figures["ratio_paired_each"]
    assert run == pytest.approx(figures["each"]["core"][0]["rps"] / figures["each"]["proxy"][0]["rps"], abs=1e-3)
    assert figures["ratio_paired"] == run
    assert any("paired: median" in line for line in lines[:-1])


def test_make_bench_rewrites_only_the_last_section_of_the_performance_page(tmp_path: Path) -> None:
    page = tmp_path / "PERFORMANCE.md"
    page.write_text(f"# Performance\nprose kept\n{MARKER}\nold figures\n")
    goals = {
        "core_ratio": {"value": 0.82, "goal": ">= 0.8", "met": True},
        "up_rss_mb": {"value": 2048.0, "goal": "<= 1024", "met": False},
    }
    report = {
        "machine": {"cpus": 2, "cpu_model": "EPYC", "load_average_1m": 0.4, "python": "3.11.7", "grpcio": "1.75.0"},
        "goals": goals,
        "core": {"ratio": 0.81, "ratio_paired": 0.82, "runs": 5},
        "capacity": {"p99_limit_ms": 50.0, "core_rps": 954.0, "proxy_rps": 1490.0, "ratio": 0.64},
    }
    update_performance(page, report, dt.date(2026, 12, 5))
    text = page.read_text()
    assert text.startswith(f"# Performance\nprose kept\n{MARKER}\nMeasured 2026-12-05")
    assert "old figures" not in text
    assert "| core_ratio | 0.82 | >= 0.8 | yes |" in text and "| up_rss_mb | 2,048.0 | <= 1024 | NO |" in text
    page.write_text("# no marker\n")
    with pytest.raises(BenchError, match="no line"):
        update_performance(page, report)


def test_the_shipped_performance_page_can_be_rewritten() -> None:
    assert MARKER in (Path(__file__).resolve().parents[1] / "docs" / "PERFORMANCE.md").read_text()
