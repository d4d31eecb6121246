"""The demo's steps after the network stopped: the audit log verified, a what-if simulation, a
short load test with faults, the model held against the live testbed (each on a network of its
own), and where to look next."""

from __future__ import annotations

from crossroads.audit import verify_store
from network.run import Overrides, load
from scenarios.shipped import shipped
from testbed.calibration.calibrate import CalibrationPlan, calibrate
from testbed.calibration.measure import LivePlan
from testbed.calibration.validate import ValidationPlan, validate
from testbed.calibration.whatifs import WhatIfs
from testbed.demo.session import (
    DEMO_CALIBRATION_RATES,
    DEMO_HELD_OUT,
    DEMO_LEVEL_S,
    DEMO_LOADTEST,
    DEMO_LOADTEST_S,
    DEMO_REPLICATIONS,
    DEMO_SIMULATION,
    Demo,
)
from testbed.loadtest import LoadtestRun, run_loadtest
from testbed.simulation import simulate_to

__all__ = ["load_test", "model_loop", "verify_audit", "what_if", "where_to_look"]


def verify_audit(demo: Demo) -> None:
    """The whole audit log re-derived from its leaves: hashes, tiles, roots, checkpoint signatures."""
    result = verify_store(demo.state)
    if result.ok:
        demo.say(
            f"audit verification PASSED: {result.size} records; every leaf, tile, root and signed checkpoint holds"
        )
    else:
        demo.say(f"audit verification FAILED at index {result.first_bad_index}: {result.message}")
    demo.ok &= result.ok
    demo.results["verify"] = {"ok": result.ok, "size": result.size, "first_bad_index": result.first_bad_index}


def where_to_look(demo: Demo) -> None:
    """Where the state folder is, and the commands that read it."""
    person = next((s.envelope.subject_niss for s in demo.sent if s.kind == "CONSULTATION"), "NISS")
    state = demo.state
    demo.say(f"the state folder is {state} (audit log, directory, certificates, agency inboxes, logs)")
    demo.say("look inside with:")
    demo.say(f"    crossroads audit who-accessed {person} --state {state}   # every exchange about that person")
    demo.say(f"    crossroads audit head --state {state}")
    demo.say(f"    crossroads audit verify --state {state}")
    demo.say(f"and bring it up again: crossroads up --state {state}, then crossroads send --state {state} consultation")


def what_if(demo: Demo) -> None:
    """A what-if simulation of the whole network: a sector hub down during the DmfA peak."""
    scenario_file = shipped(DEMO_SIMULATION)
    scenario = Overrides(replications=DEMO_REPLICATIONS).apply(load(scenario_file))
    demo.say(f"simulating {scenario_file.name}: {scenario.description}")
    report = simulate_to(demo.out / "simulation", scenario_file, scenario, workers=2, say=demo.say)
    demo.results["simulation_report"] = str(report.resolve())


def load_test(demo: Demo) -> None:
    """A short Locust load test of a network of its own, with a host killed and the core frozen."""
    scenario = shipped(DEMO_LOADTEST)
    demo.say(
        f"load-testing a fresh network with {scenario.name} for {DEMO_LOADTEST_S:.0f} s (Locust, faults, audit checks)"
    )
    result = run_loadtest(
        LoadtestRun(scenario=scenario, out=demo.out / "loadtest", duration=DEMO_LOADTEST_S, progress=False)
    )
    overall = result.summary["overall"]
    demo.say(f"{overall['requests']} requests, {overall['acknowledged']} acknowledged; guarantees:")
    for check in result.summary["guarantees"]:
        demo.say(f"    {'held  ' if check['ok'] else 'BROKEN'}  {check['name']}")
    demo.say(f"report: {(result.out / 'report.html').resolve()}")
    demo.ok &= result.ok
    demo.results["loadtest"] = {
        "ok": result.ok,
        "failed": list(result.failed),
        "report": str(result.out / "report.html"),
    }


def model_loop(demo: Demo) -> None:
    """The model against the live testbed, in short: calibrate at two levels, predict a level
    between them, measure it on a fresh network, and print the errors."""
    live = LivePlan(scenario=shipped(DEMO_LOADTEST), seconds=DEMO_LEVEL_S, warmup_s=1.0)
    rates = ", ".join(f"{r:g}/s" for r in DEMO_CALIBRATION_RATES)
    demo.say(f"calibrating a model of the live testbed at {rates} ({DEMO_LEVEL_S:g} s each), then predicting "
             f"{DEMO_HELD_OUT:g}/s, a level it was not fitted on, before measuring it")  # fmt: skip
    cal = calibrate(demo.out / "calibration", CalibrationPlan(live=live, rates=DEMO_CALIBRATION_RATES), say=demo.say)
    plan = ValidationPlan(live=live, held_out=(DEMO_HELD_OUT,), knee=False, replications=3,
                          whatifs=WhatIfs(enabled=False))  # fmt: skip
    result = validate(cal, demo.out / "validation", plan, say=demo.say)
    (level,) = result["levels"]
    for name, unit in (("throughput", "/s"), ("mean_ms", " ms"), ("p99_ms", " ms")):
        predicted, measured, error = level["predicted"][name], level["measured"][name], level["error"][name]
        shown = "-" if error is None else f"{error:+.1%}"
        demo.say(f"    {name:<11} predicted {predicted:9.2f}{unit:<3} measured {measured:9.2f}{unit:<3} error {shown}")
    demo.say(f"model: {cal}; report: {(demo.out / 'validation' / 'report.html').resolve()}")
    demo.say(
        "the full loop (held-out levels, the knee, three what-ifs): crossroads calibrate, then crossroads validate"
    )
    demo.results["model_loop"] = {"calibrated": str(cal), "level": level}
