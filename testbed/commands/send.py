"""`crossroads send`: send one exchange as a chosen agency, or many at random, and show what happened.

One exchange: the fields a person names are sent as given; the ones left out are picked from
the world of the network (rebuilt from its scenario, seeded) so that the exchange routes
(`agencies.exchanges.asked`), and the output says which were picked. The output is JSON: the outcome,
the answer (a decoded ConsultationAnswer, or the status of each delivery), the route (every
destination and the sector hub it went via), the deliberations, and the audit receipt (index,
inclusion proof, verified against the signed checkpoint). A refusal prints its status code,
message and audit index and exits 1.

`--random N` sends N exchanges of every kind drawn by `agencies.exchanges.samples` (seeded) and prints
counts by kind and outcome.

An exchange for a citizen (purpose citizen_access, sent by the portal) gets the citizen's
assertion from the network's synthetic FAS (STATE/pki/fas/, crossroads.citizen) before it is
sent, as the portal would after the citizen logged in: the testbed plays both.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from agencies import authorizations as a
from agencies.exchanges import (
    DIMONA_TYPES,
    FAMILIES,
    Ask,
    NoExchange,
    WorkerLine,
    prepare,
)
from agencies.world import World
from crossroads.citizen import FasError
from crossroads.client import DEFAULT_TIMEOUT_S, ClientError
from crossroads.domain import AgencyId, Kind
from crossroads.outcomes import ACCEPTED
from testbed.commands.arguments import add_command, add_quiet, failed
from testbed.sending import DEFAULT_CONCURRENCY, send_one, send_random
from testbed.world_files import load_world

__all__ = ["ask_from_args", "register"]

# ------------------------------------------------------------------ what a person asked for


def ask_from_args(args: argparse.Namespace) -> Ask:
    """The `Ask` of parsed `crossroads send KIND ...` arguments."""
    given = vars(args)
    names = {f.name for f in dataclasses.fields(Ask)} - {"kind", "sender", "workers", "fields"}
    values = {name: given[name] for name in names if given.get(name) is not None}
    return Ask(
        kind=Kind[given["kind"].upper()],
        sender=AgencyId(given["sender"]) if given.get("sender") else None,
        workers=tuple(given.get("workers") or ()),
        fields=tuple(given.get("fields") or ()),
        **values,
    )


# ------------------------------------------------------------------ the command

_HELP = """\
Send one exchange to the crossroads core of a running network, as one agency (its certificate
from STATE/pki), and print JSON: the outcome, the answer (a consultation's ConsultationAnswer,
else each delivery's status), the route (every destination and the sector hub it went via),
the deliberations that allowed it, and the audit receipt (the record's index, its inclusion
proof and whether it verifies against the checkpoint signed with STATE/keys/audit.pub).

Fields left out are picked from the network's world (rebuilt from its scenario, seeded by
--seed) so that the exchange routes; "picked" in the output names them. Fields given are sent
as given, so an invalid one shows how the core refuses it. A refusal prints its status code,
message and audit index, and exits 1.

  crossroads send --state DIR consultation
  crossroads send --state DIR --as ONEM consultation --dataset health_insurance
  crossroads send --state DIR dimona --type OUT
  crossroads send --state DIR --random 20 --seed 7

Exit codes: 0 delivered or queued; 1 refused or failed; 2 bad use (no network, no example).
"""

_KIND_HELP = {
    "consultation": "ask the agency holding a dataset about a person (default sender: one a deliberation allows)",
    "dimona": "declare the start (IN), end (OUT), change or cancellation of an employment (default sender: PORTAL)",
    "dmfa": "file an employer's quarterly wages and working time, fanned out (default sender: PORTAL)",
    "drs": "declare a social risk: sickness, work accident, unemployment (default sender: PORTAL)",
    "integration": "open a file on a person in the sender's sector of the reference directory",
    "deintegration": "close a file on a person in the reference directory",
    "mutation": "push a change about a person to every agency with the person in its files "
    "(default sender: the dataset's authentic source, NR or ONSS)",
}


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The options of every form. Also given to each kind, so they may come after its name; there
    they default to "absent" so that they never overwrite the same option given before the kind."""

    def add(*names: str, **options: Any) -> None:
        if not top:
            options["default"] = argparse.SUPPRESS
        parser.add_argument(*names, **options)

    add("--state", metavar="DIR", type=Path, help="state folder of the running network")
    add("--as", dest="sender", metavar="AGENCY", help="send as this agency (e.g. ONEM, CPAS-0042)")
    add("--seed", type=int, help="seed of the picks (default: fresh, printed)")
    add(
        "--scenario-file",
        type=Path,
        metavar="FILE",
        help="the scenario the network was brought up with (default: found by the world's fingerprint)",
    )
    add(
        "--timeout",
        type=float,
        metavar="S",
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds per call (default {DEFAULT_TIMEOUT_S})",
    )


def _field(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _worker(text: str) -> WorkerLine:
    try:
        return WorkerLine.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _kind_options(name: str, p: argparse.ArgumentParser) -> None:
    if name in ("consultation", "dimona", "drs", "integration", "deintegration", "mutation"):
        p.add_argument("--niss", help="the person's NISS (11 digits; sent as given)")
    if name in ("dimona", "dmfa", "drs"):
        p.add_argument("--kbo", help="the employer's KBO number (10 digits)")
    if name == "consultation":
        p.add_argument("--dataset", help="e.g. identity, wages, health_insurance, unemployment, family_allowance")
        p.add_argument("--purpose", help="e.g. social_integration, unemployment_benefits, health_insurance")
        p.add_argument("--deliberation", metavar="REF", help="the deliberation relied on, e.g. 03/005")
    elif name == "dimona":
        p.add_argument("--type", dest="dimona_type", choices=sorted(DIMONA_TYPES), help="default IN")
        p.add_argument("--start", metavar="DATE", help="start of the employment (ISO date)")
        p.add_argument("--end", metavar="DATE", help="end of the employment (OUT, UPDATE)")
    elif name == "dmfa":
        p.add_argument("--quarter", help="e.g. 2026Q3 (default: the last full quarter)")
        p.add_argument(
            "--worker",
            dest="workers",
            type=_worker,
            nargs="+",
            action="extend",
            metavar="NISS:WAGE_EUR:DAYS",
            help="a worker line (default: the employer's workers in the world)",
        )
    elif name == "drs":
        p.add_argument("--family", choices=sorted(FAMILIES), help="the risk family")
        p.add_argument("--scenario", type=int, metavar="N", help="the scenario number within the family")
        p.add_argument("--event-date", dest="start", metavar="DATE", help="the day of the event")
    elif name in ("integration", "deintegration"):
        p.add_argument("--sector", type=int, help="sector code (must be the sender's), e.g. 4 health, 17 CPAS")
        p.add_argument("--quality", type=int, help="quality code: 902 provisional, 000 definitive, 001-900")
        p.add_argument("--phase", type=int, help="phase code (default 0)")
        p.add_argument("--start", metavar="DATE", help="the day the file opens")
        p.add_argument("--end", metavar="DATE", help="the day the file closes")
    else:
        p.add_argument("--change", help=f"e.g. {', '.join(a.MUTATION_CHANGES[a.REGISTER_CHANGES])}, dmfa_attestation")
        p.add_argument("--dataset", help=f"{a.REGISTER_CHANGES} or {a.DMFA_ATTESTATIONS} (default: by change)")
    if name in ("drs", "mutation"):
        p.add_argument(
            "--field",
            dest="fields",
            type=_field,
            action="append",
            metavar="KEY=VALUE",
            help="a field of the declaration or notice (repeatable)",
        )
    p.add_argument("--as-of", metavar="DATE", help="the day the exchange is about (default: the world's day)")
    p.add_argument("--message-id", help="the idempotency key (default: fresh)")


def register(sub: Any) -> None:
    """Add `send` and its kinds to the `crossroads` sub-commands."""
    what = "send one exchange as an agency (or --random N) and show route, answer and receipt"
    send = add_command(sub, "send", run_send, help_text=what, description=_HELP)
    _common(send, top=True)
    send.add_argument("--random", type=int, metavar="N", help="send N exchanges of every kind, drawn at random")
    send.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"--random: senders served at once (default {DEFAULT_CONCURRENCY})",
    )
    add_quiet(send, "--random: no progress bar on stderr", flag="--no-progress")
    kinds = send.add_subparsers(dest="kind", metavar="KIND")
    for name, text in _KIND_HELP.items():
        kind = kinds.add_parser(name, help=text, description=text)
        _common(kind, top=False)
        _kind_options(name, kind)


def _fail(message: str) -> int:
    return failed("send", message, 2)


def _run_random(args: argparse.Namespace, world: World, seed: int) -> int:
    if args.kind:
        return _fail("--random draws every kind: name no kind with it")
    if args.random < 1:
        return _fail(f"--random needs a positive count, got {args.random}")
    started = time.perf_counter()
    report = send_random(
        args.state,
        world,
        per_kind=args.random,
        seed=seed,
        concurrency=args.concurrency,
        timeout_s=args.timeout,
        progress=not args.no_progress,
    )
    report["totals"]["seconds"] = round(time.perf_counter() - started, 3)
    print(json.dumps(report, indent=2))
    bad = {k: n for k, n in report["totals"]["by_outcome"].items() if k not in ACCEPTED}
    return 1 if bad else 0


def run_send(args: argparse.Namespace) -> int:
    if args.state is None:
        return _fail("--state DIR is required (the folder given to crossroads up)")
    if args.random is None and not args.kind:
        return _fail(
            "name a kind (consultation, dimona, dmfa, drs, integration, deintegration, mutation) or --random N"
        )
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    try:
        world = load_world(args.state, args.scenario_file)
        if args.random is not None:
            return _run_random(args, world, seed)
        prepared = prepare(world, np.random.default_rng(seed), ask_from_args(args))
        code, report = send_one(args.state, prepared, args.timeout, seed)
    except (ClientError, NoExchange, FasError) as exc:
        return _fail(str(exc))
    except grpc.RpcError as exc:  # the core went away between the exchange and its receipt
        return _fail(f"the core stopped answering: {exc}")
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if report["outcome"] == "REFUSED":
        where = f" (audit record {report['audit_index']})" if report["audit_index"] is not None else ""
        print(f"crossroads send: refused, {report['status']}: {report['message']}{where}", file=sys.stderr)
    return code
