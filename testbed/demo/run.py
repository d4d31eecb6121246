"""Running the demo: the network up in a fresh state folder, the live steps, the network down,
the other steps; OUT/demo.json."""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import numpy as np

from agencies.spec import load_world_spec
from agencies.world import World
from scenarios.shipped import default_scenario
from testbed.demo.account import account, audit_head
from testbed.demo.after import load_test, model_loop, verify_audit, what_if, where_to_look
from testbed.demo.sending import send_again, send_for_a_citizen, send_refused, send_routed
from testbed.demo.session import DEMO_SEED, Demo, Step
from testbed.live import DEFAULT_HOSTS, LiveNetworkError, bring_up, status

__all__ = ["DEFAULT_STEPS", "run_demo"]

DEFAULT_STEPS: tuple[Step, ...] = (
    Step("routed exchanges of each kind", send_routed),
    Step("exchanges the core refuses", send_refused),
    Step("a message sent twice", send_again),
    Step("a citizen's own file, and only theirs", send_for_a_citizen),
    Step("what happened", account),
    Step("the audit head", audit_head),
    Step("the audit log, verified", verify_audit, live=False),
    Step("a what-if simulation of the whole network", what_if, live=False),
    Step("a short load test, with faults", load_test, live=False),
    Step("the model against the live testbed", model_loop, live=False),
    Step("where to look", where_to_look, live=False),
)


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops the demo as Ctrl-C does: the network is stopped on the way out."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fresh_state(state: Path) -> None:
    """Empty `state` but for its certificates; LiveNetworkError if a network still runs there."""
    endpoints = state / "endpoints.json"
    if endpoints.exists() and json.loads(endpoints.read_text()).get("up"):
        report = status(state)
        if any(p["pid_alive"] for p in [report["core"], *report["hosts"]] if p):
            raise LiveNetworkError(f"a network is running in {state}: stop it before running the demo there")
    for child in state.iterdir() if state.exists() else ():
        if child.name == "pki":  # issuing ~3,000 certificates again would only cost time
            continue
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


def _title(demo: Demo, number: int, step: Step) -> None:
    demo.say(f"\n== {number}. {step.title}")


def run_demo(
    out: Path,
    *,
    steps: Sequence[Step] = DEFAULT_STEPS,
    scenario: Path | None = None,
    hosts: int = DEFAULT_HOSTS,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
) -> int:
    """Bring the network up in OUT/state, run `steps`, stop it; 0 if everything happened as it should.

    Live steps run in order while the network is up, then it is stopped (core first, then
    hosts), then the other steps run. Stops the network on any error, Ctrl-C or SIGTERM
    (KeyboardInterrupt is re-raised after). Writes OUT/demo.json with every step's results.
    """
    speak = say or (lambda text: print(text, flush=True))
    scenario = scenario or default_scenario()
    state = (Path(out) / "state").resolve()
    world = World.build(load_world_spec(scenario))
    demo = Demo(Path(out), state, scenario, world, np.random.default_rng(DEMO_SEED), speak)
    speak(f"== 0. bringing the live network of {scenario.name} up in {state} (a fresh state folder)")
    _fresh_state(state)
    with _sigterm_interrupts():
        with bring_up(scenario, state, hosts=hosts, progress=progress) as network:
            demo.network = network
            speak(f"{network.endpoints['agencies']} agencies and the core serving on {network.endpoints['core']}")
            live = [s for s in steps if s.live]
            for number, step in enumerate(live, 1):
                _title(demo, number, step)
                step.run(demo)
            speak(f"\n== {len(live) + 1}. stopping the network (the core first, then the agency hosts)")
        demo.network = None
        speak("stopped cleanly")
        for number, step in enumerate((s for s in steps if not s.live), len(live) + 2):
            _title(demo, number, step)
            step.run(demo)
    demo.results["ok"] = demo.ok
    (Path(out) / "demo.json").write_text(json.dumps(demo.results, indent=2) + "\n")
    speak(f"\ndemo {'done' if demo.ok else 'done, but something did not happen as it should (see above)'}")
    return 0 if demo.ok else 1
