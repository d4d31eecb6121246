"""`crossroads fuzz`: hostile input against the core's whole gRPC surface (loadtests/fuzz/).

Prints a JSON summary on stdout (cases by target and by status code, crashes, hangs, unspecific
statuses, refusals audited and not, resends checked against their first answer, problems with a
few examples, the canary consultations and audit verifications after each target) and writes it,
with each target's state folder, to --out. Exits 1 on any crash, hang, UNKNOWN/INTERNAL status,
vague refusal, refusal without an audit record, resend not answered exactly once, or any other
failed check; 0 when every case passed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from testbed.commands.arguments import add_command, add_out, add_quiet, add_seed, failed, settings

__all__ = ["DEFAULT_OUT", "exit_code", "register", "run"]

DEFAULT_OUT = Path("runs/fuzz")
TARGET_NAMES = ("exchange", "core", "agency", "tls")  # loadtests.fuzz.TARGETS, without importing Hypothesis

_HELP = """\
Fuzz the crossroads core with Hypothesis: the in-process pipeline (Exchange.handle with the real
directory, audit log and outbox, forwarding to the real agency host servicer), the core over
mutual TLS on 127.0.0.1 (Exchange, Audit, Health, reflection, unknown methods), the agency
host's Deliver, and TLS handshakes with no, foreign, expired and not-yet-valid certificates.
Cases: random and mutated protobuf bytes, oversized and deeply nested fields, invalid
identifiers, unknown enum values, forged sender fields, each under a fresh message id; and, for
the core's exactly-once register, replayed and reordered messages, reused message ids with other
content, and the same id several times at once.
Shares of --cases: exchange 55 %, core 30 %, agency 14.5 %, tls 0.5 %.
"""


def register(sub: Any) -> None:
    p = add_command(sub, "fuzz", run, help_text="fuzz the core's gRPC surface (hostile input)", description=_HELP)
    p.add_argument("--cases", type=int, default=100_000, help="cases in all (default 100,000)")
    add_seed(p, "seed of the world's corpus and of Hypothesis", default=0)
    add_out(p, "work folder and summary.json", default=DEFAULT_OUT)
    p.add_argument(
        "--targets", default=",".join(TARGET_NAMES), help="comma-separated subset of " + ", ".join(TARGET_NAMES)
    )
    p.add_argument("--batch", type=int, default=16, help="cases sent at once")
    p.add_argument("--persons", type=int, default=None, help="shrink the demo world's population (faster set-up)")
    p.add_argument(
        "--atheris-runs", type=int, default=0, help="coverage-guided runs of validation+routing (needs atheris)"
    )
    add_quiet(p, "no progress bar on stderr", flag="--no-progress")


def exit_code(summary: dict[str, Any]) -> int:
    """1 if the summary shows any problem (crash, hang, unspecific status, unaudited refusal, ...)."""
    return 1 if summary["problems"] else 0


def run(args: argparse.Namespace) -> int:
    from loadtests.fuzz import FuzzConfig, FuzzError, run_campaign  # Hypothesis is imported only when fuzzing
    from testbed.atheris_child import atheris_campaign

    targets = tuple(t for t in args.targets.split(",") if t)
    unknown = sorted(set(targets) - set(TARGET_NAMES))
    if unknown or args.cases < len(targets) or args.batch < 1:
        return failed("fuzz", f"bad --targets {unknown}, --cases or --batch", 2)
    config = settings(FuzzConfig, args, targets=targets)
    with tqdm(total=args.cases, desc="fuzz", unit="case", file=sys.stderr, disable=args.no_progress) as bar:
        try:
            tally = run_campaign(config, progress=bar.update, atheris=atheris_campaign)
        except FuzzError as exc:
            return failed("fuzz", str(exc), 1)
    summary = tally.summary()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    summary.pop("by_case")  # in summary.json; too long for a terminal
    print(json.dumps(summary, indent=2))
    return exit_code(summary)
