"""`crossroads demo`: the live network and a what-if simulation, told as it happens.

`run_demo(out)` brings the network of scenarios/demo.yaml up in OUT/state, runs its steps and
stops the network, also on Ctrl-C or SIGTERM. Each run starts from a fresh state folder (the
certificates of an earlier run are kept): the same seeded exchanges again on a directory the
last run changed would not show the same thing. A step is a function of the running `Demo`;
the steps marked `live` run while the network is up, the others after it stopped:

    live:  routed exchanges of each kind, exchanges the core refuses, a declaration sent twice
           (answered once), a citizen's own file through the portal and someone else's
           (refused), what happened (a table,
           a consultation's answer, where a DmfA fanned out to, where a mutation was pushed),
           the audit head and one exchange's verified receipt;
    after: the verification of the whole audit log (crossroads.audit.verify_store), a what-if
           simulation of the whole network with its report, a short load test with faults and
           its report (each on a network of its own), and where to look next.

A step records what it found in `Demo.results`, written to OUT/demo.json at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from agencies.exchanges import expected_decision, samples
from agencies.spec import load_world_spec
from agencies.world import World
from crossroads.audit import verify_store
from crossroads.citizen import Fas
from crossroads.domain import AgencyId, Kind
from crossroads.routing import Routed
from network.run import Overrides, load
from protos import messages_pb2, services_pb2
from scenarios.shipped import default_scenario, shipped
from testbed.client import CoreClient, ExchangeRefused, Receipt
from testbed.commands.send import with_fresh_id
from testbed.commands.simulate import simulate_to
from testbed.live import DEFAULT_HOSTS, LiveNetwork, LiveNetworkError, bring_up, status
from testbed.loadtest import LoadtestRun, run_loadtest

__all__ = ["DEFAULT_OUT", "DEFAULT_STEPS", "DEMO_SEED", "PER_KIND", "Demo", "Sent", "Step", "register", "run_demo"]

DEFAULT_OUT = Path("runs/demo")
DEMO_SEED = 20261128  # the same exchanges every run: a demo people can follow along
PER_KIND = 2  # routed exchanges of each kind
DEMO_SIMULATION = "sector_hub_outage.yaml"  # the what-if the demo simulates
DEMO_REPLICATIONS = 2  # enough for confidence intervals, few enough for a demo
DEMO_LOADTEST = "loadtest_smoke.yaml"  # the load test the demo ends with
DEMO_LOADTEST_S = 25.0  # long enough for its host kill (at 12 s) and core freeze (at 22 s)
_ROUTE_SHOWN = 3  # destinations named in a table cell before "+N more"
_DRAWS = 50  # samples drawn to find one that reaches somebody


@dataclass
class Sent:
    """One exchange of the demo and what the core answered."""

    number: int
    sender: AgencyId
    envelope: messages_pb2.Envelope
    reply: messages_pb2.ExchangeReply | None = None
    refusal: ExchangeRefused | None = None

    @property
    def kind(self) -> str:
        return messages_pb2.MessageKind.Name(self.envelope.kind)

    @property
    def outcome(self) -> str:
        if self.reply is not None:
            return messages_pb2.Outcome.Name(self.reply.outcome)
        return self.refusal.code.name if self.refusal is not None else "NOT SENT"

    @property
    def audit_index(self) -> int | None:
        return self.reply.audit_index if self.reply is not None else self.refusal.audit_index if self.refusal else None

    def as_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "kind": self.kind,
            "sender": self.sender,
            "message_id": self.envelope.message_id,
            "subject": self.envelope.subject_niss or self.envelope.subject_kbo,
            "outcome": self.outcome,
            "route": [{"agency": d.agency, "via": d.via or None} for d in self.reply.deliveries] if self.reply else [],
            "deliberation": self.reply.deliberation if self.reply else "",
            "audit_index": self.audit_index,
            "refusal": self.refusal.details if self.refusal else None,
        }


@dataclass
class Demo:
    """A demo being run: where, the world, the network while it is up, and what was found."""

    out: Path
    state: Path
    scenario: Path
    world: World
    rng: np.random.Generator
    say: Callable[[str], None]
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])  # message ids fresh for each run
    network: LiveNetwork | None = None
    sent: list[Sent] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    ok: bool = True  # a step sets it False when what it shows did not happen as it should

    def send(self, sender: AgencyId, envelope: messages_pb2.Envelope) -> Sent:
        """Send `envelope` as `sender` (a fresh message id) and keep what the core answered."""
        sent = Sent(len(self.sent), sender, with_fresh_id(envelope, self.run))
        with CoreClient.connect(self.state, sender) as client:
            try:
                sent.reply = client.exchange(sent.envelope)
            except ExchangeRefused as refused:
                sent.refusal = refused
        self.sent.append(sent)
        return sent

    def receipt(self, sent: Sent) -> Receipt:
        with CoreClient.connect(self.state, sent.sender) as client:
            assert sent.audit_index is not None
            return client.receipt(sent.audit_index, message_id=sent.envelope.message_id)


@dataclass(frozen=True, slots=True)
class Step:
    title: str
    run: Callable[[Demo], None]
    live: bool = True  # runs while the network is up


# ------------------------------------------------------------------ the steps


def _reaching(demo: Demo, kind: Kind) -> samples.Sample:
    """A sample of `kind` whose routing names at least one destination (a mutation may name none)."""
    sample = samples.KINDS[kind](demo.world, demo.rng)
    for _ in range(_DRAWS):
        decision = expected_decision(demo.world, sample.sender, sample.envelope)
        if isinstance(decision, Routed) and (decision.destinations or kind in (Kind.INTEGRATION, Kind.DEINTEGRATION)):
            break
        sample = samples.KINDS[kind](demo.world, demo.rng)
    return sample


def send_routed(demo: Demo) -> None:
    """PER_KIND exchanges of every kind, drawn by agencies.exchanges.samples: each allowed and routed."""
    for kind in samples.KINDS:
        for _ in range(PER_KIND):
            sample = _reaching(demo, kind)
            sent = demo.send(sample.sender, sample.envelope)
            demo.ok &= sent.outcome in ("DELIVERED", "QUEUED")
    demo.say(f"sent {len(demo.sent)} exchanges, {PER_KIND} of each kind, from agencies picked at random")


def send_refused(demo: Demo) -> None:
    """A consultation no deliberation allows, and one naming a NISS whose check digits fail."""
    asked = samples.consultation(demo.world, demo.rng)
    no_deliberation = messages_pb2.Envelope()
    no_deliberation.CopyFrom(asked.envelope)
    no_deliberation.dataset, no_deliberation.purpose, no_deliberation.deliberation = "wages", "social_tariff", ""
    no_deliberation.payload = messages_pb2.ConsultationRequest(dataset="wages").SerializeToString()
    denied = demo.send(AgencyId("LOC-0001"), no_deliberation)  # a local body: no deliberation gives it wages
    bad_niss = messages_pb2.Envelope()
    bad_niss.CopyFrom(asked.envelope)
    niss = bad_niss.subject_niss
    bad_niss.subject_niss = niss[:-1] + str((int(niss[-1]) + 1) % 10)  # check digits off by one
    invalid = demo.send(asked.sender, bad_niss)
    demo.ok &= (denied.outcome, invalid.outcome) == ("PERMISSION_DENIED", "INVALID_ARGUMENT")
    demo.say("sent 2 exchanges the core must refuse: no deliberation allows one, the other names an invalid NISS")


def send_again(demo: Demo) -> None:
    """The first declaration sent again with its own message id: the core answers it from its journal."""
    first = next(s for s in demo.sent if s.reply is not None and s.kind != "CONSULTATION")
    assert first.reply is not None
    with CoreClient.connect(demo.state, first.sender) as client:
        size = client.head().size
        again = client.exchange(first.envelope)  # the same bytes, the same message id
        grown = client.head().size - size
    same = again == first.reply
    demo.ok &= same and grown == 0
    demo.say(
        f"sent #{first.number} ({first.kind}, message id {first.envelope.message_id}) again: "
        f"{'the same answer' if same else 'ANOTHER answer'} (audit record {again.audit_index}), "
        f"{grown} new audit records, nothing forwarded twice: a message id is handled once"
    )


def _citizen_sample(demo: Demo) -> samples.Sample:
    """The portal consulting a citizen's own file, about a dataset some agency holds on them."""
    sample = samples.citizen_consultation(demo.world, demo.rng)
    for _ in range(_DRAWS):
        decision = expected_decision(demo.world, sample.sender, sample.envelope)
        if isinstance(decision, Routed) and decision.destinations:
            break
        sample = samples.citizen_consultation(demo.world, demo.rng)
    return sample


def send_for_a_citizen(demo: Demo) -> None:
    """A citizen (eID, through the FAS) consulting their own file through the portal; then someone else's."""
    sample = _citizen_sample(demo)
    Fas.open(demo.state / "pki").vouch(sample.envelope, sample.sender, time.time())
    own = demo.send(sample.sender, sample.envelope)
    other = messages_pb2.Envelope()
    other.CopyFrom(sample.envelope)  # the same citizen's assertion, about another person, as a new message
    other.message_id += "-other"
    while other.subject_niss == sample.envelope.subject_niss:
        other.subject_niss = demo.world.niss(int(demo.rng.integers(demo.world.person_count)))
    theirs = demo.send(sample.sender, other)
    demo.ok &= (own.outcome, theirs.outcome) == ("DELIVERED", "PERMISSION_DENIED")
    demo.say(
        f"the portal consulted {sample.envelope.dataset} for citizen {sample.envelope.subject_niss} "
        f"with the FAS's assertion: {own.outcome}; the same assertion for {other.subject_niss}: {theirs.outcome}"
    )


def _route(sent: Sent, limit: int = _ROUTE_SHOWN) -> str:
    if sent.reply is None:
        return "-"
    hops = [f"{d.agency} via {d.via}" if d.via else d.agency for d in sent.reply.deliveries]
    if not hops:
        return "(directory only)"
    more = f", +{len(hops) - limit} more" if len(hops) > limit else ""
    return ", ".join(hops[:limit]) + more


def _table(rows: Sequence[Sequence[str]]) -> Iterator[str]:
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    for row in rows:
        yield "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()


def _first(demo: Demo, kind: str) -> Sent | None:
    return next((s for s in demo.sent if s.kind == kind and s.reply is not None and s.reply.deliveries), None)


def _answer_lines(sent: Sent) -> Iterator[str]:
    assert sent.reply is not None
    found = messages_pb2.ConsultationAnswer.FromString(sent.reply.deliveries[0].reply)
    yield (
        f"#{sent.number}: {sent.sender} asked for the {sent.envelope.dataset} data of {sent.envelope.subject_niss} "
        f"(purpose {sent.envelope.purpose}, deliberation {sent.reply.deliberation}); {found.agency} answered:"
    )
    yield from (f"    {key}: {value}" for key, value in sorted(found.fields.items()))


def account(demo: Demo) -> None:
    """The table of what happened, one consultation's answer, a DmfA's fan-out and a mutation's push."""
    header = ("#", "kind", "sender", "subject", "outcome", "route", "deliberation", "audit")
    rows = [header] + [
        (
            str(s.number),
            s.kind,
            s.sender,
            s.envelope.subject_niss or s.envelope.subject_kbo,
            s.outcome,
            _route(s),
            s.reply.deliberation if s.reply and s.reply.deliberation else "-",
            str(s.audit_index),
        )
        for s in demo.sent
    ]
    for line in _table(rows):
        demo.say("  " + line)
    consultation, dmfa, mutation = _first(demo, "CONSULTATION"), _first(demo, "DMFA"), _first(demo, "MUTATION")
    if consultation is not None:
        demo.say("")
        for line in _answer_lines(consultation):
            demo.say(line)
    for sent, what in ((dmfa, "DmfA of employer {kbo} ({n} workers)"), (mutation, "mutation about {niss}")):
        if sent is not None:
            text = what.format(
                kbo=sent.envelope.subject_kbo, n=len(sent.envelope.related_niss), niss=sent.envelope.subject_niss
            )
            demo.say(f"\n#{sent.number}: the {text} went to {len(sent.reply.deliveries)} agencies:")  # type: ignore[union-attr]
            demo.say("    " + _route(sent, limit=1_000))
    for sent in (s for s in demo.sent if s.refusal is not None):
        assert sent.refusal is not None
        demo.say(f"\n#{sent.number} refused: {sent.refusal.code.name}: {sent.refusal.details}")
        demo.say(f"    (audited all the same: audit record {sent.refusal.audit_index})")
    demo.results["exchanges"] = [s.as_json() for s in demo.sent]


def _head_json(head: services_pb2.AuditHead) -> dict[str, Any]:
    return {"size": head.size, "root": head.root.hex(), "checkpoint": head.checkpoint}


def audit_head(demo: Demo) -> None:
    """The signed head of the audit log, and one exchange's receipt verified against it."""
    with CoreClient.connect(demo.state, demo.sent[0].sender) as client:
        head = client.head()
    demo.say(f"audit log: {head.size} records, root {head.root.hex()}")
    demo.say("signed checkpoint (C2SP, Ed25519):")
    for line in head.checkpoint.rstrip("\n").split("\n"):
        demo.say("    " + line)
    receipt = demo.receipt(demo.sent[0])
    verdict = "verifies" if receipt.verified else f"does NOT verify ({receipt.problem})"
    demo.say(
        f"receipt of #{demo.sent[0].number}: audit record {receipt.index}, inclusion proof of "
        f"{len(receipt.proof_hex)} hashes in the tree of {receipt.tree_size}: {verdict} against the signed checkpoint"
    )
    demo.ok &= receipt.verified
    demo.results["head"] = _head_json(head)
    demo.results["receipt"] = receipt.as_json()


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
    Step("where to look", where_to_look, live=False),
)


# ------------------------------------------------------------------ running it


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


# ------------------------------------------------------------------ the command

_HELP = """\
Bring the live network of the demo scenario up (~3,000 agencies on 127.0.0.1, mutual TLS),
send a few routed exchanges of each kind and two that the core refuses, print what happened
(route, deliberation, answer, fan-out, audit index), the signed audit head and a verified
receipt, stop the network, verify the whole audit log, and say where to look next.
The state folder is OUT/state: emptied at the start (certificates kept) and left in place at the
end, so that `crossroads audit ... --state OUT/state` reads what this run did.
"""


def register(sub: Any) -> None:
    """Add `demo` to the `crossroads` sub-commands."""
    demo = sub.add_parser(
        "demo",
        help="bring the live network up, send exchanges, show the audit log, stop",
        description=_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, metavar="DIR", help=f"run folder (default {DEFAULT_OUT})"
    )
    demo.add_argument(
        "--hosts", type=int, default=DEFAULT_HOSTS, help=f"agency host processes (default {DEFAULT_HOSTS})"
    )
    demo.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        return run_demo(args.out, hosts=args.hosts)
    except LiveNetworkError as exc:
        print(f"crossroads demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ncrossroads demo: interrupted; the network was stopped", file=sys.stderr)
        return 130
