"""`crossroads loadtest`: Locust against the live core, with faults, and the audit guarantees checked."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from loadtests.spec import LoadtestSpecError
from testbed.commands.arguments import add_command, add_hosts, add_out, add_quiet, duration, failed, settings
from testbed.live import DEFAULT_HOSTS, LiveNetworkError
from testbed.loadtest import LoadtestError, LoadtestRun, run_loadtest

__all__ = ["register"]

_HELP = """\
Bring the live network of SCENARIO's `world:` up (state in OUT/state), run Locust headless
against the crossroads core with the users, mix and load shape of its `loadtest:` section
(see loadtests/spec.py and scenarios/loadtest_*.yaml), apply its timed faults (kill and restart
an agency host, freeze the core with SIGSTOP/SIGCONT, restart a host with a service time),
let the core empty its outbox, and check the guarantees:
  - every request Locust saw acknowledged has exactly one audit record (index, sender,
    message id, outcome and destinations match);
  - `crossroads audit verify` passes on OUT/state;
  - no declaration or mutation owed to an agency is lost: each is in the agency's inbox or
    still held in the core's outbox;
  - the failed share (and p99, if set) stays within the scenario's budget.
Writes OUT/report.html, OUT/summary.json, OUT/series.json, Locust's OUT/locust_*.csv and
OUT/locust.html, the request logs OUT/requests/*.jsonl. Exit 0 when every check held, 1 when
one broke (named on stderr), 2 when the run itself failed.

Local workers: --processes K. Workers on other machines (Locust's own distributed mode): pass
Locust's master flags through, e.g.
    crossroads loadtest S --out DIR --locust=--master --locust=--expect-workers=4
and on each other machine, with a copy of DIR/state/pki, DIR/state/world.json and the scenario:
    locust -f loadtests/locustfile.py --worker --master-host HOST --crossroads-state DIR/state
The core listens on 127.0.0.1 only: remote workers need a tunnel to it (their --host). The
audit checks cover the request logs in OUT/requests: point each remote worker's
--crossroads-out at a folder shared as OUT/requests to have its requests checked too.
Without a scenario file at hand, `locust -f loadtests/locustfile.py --crossroads-state DIR`
runs the same users against a network started with `crossroads up` (no faults).
"""


def register(sub: Any) -> None:
    """Add `loadtest` to the `crossroads` sub-commands."""
    what = "load-test the live core with Locust, with faults, and check the audit guarantees"
    p = add_command(sub, "loadtest", run, help_text=what, description=_HELP)
    p.add_argument("scenario", type=Path, help="scenario YAML with world: and loadtest: sections")
    add_out(p, "run folder to write (state, logs, report)")
    p.add_argument("--users", type=int, help="users (one stage instead of the scenario's stages)")
    p.add_argument("--rate", type=float, help="target requests per second over all users (open loop)")
    p.add_argument("--duration", type=duration("--duration"), help='seconds of load, e.g. 60 or "2min"')
    p.add_argument("--processes", type=int, default=1, help="local Locust worker processes (default 1: no workers)")
    add_hosts(p, DEFAULT_HOSTS)
    p.add_argument("--locust", action="append", default=[], metavar="ARG", help="a flag passed to Locust as is")
    add_quiet(p)


def run(args: argparse.Namespace) -> int:
    plan = settings(LoadtestRun, args, locust_args=tuple(args.locust), progress=not args.quiet)
    try:
        result = run_loadtest(plan)
    except (LoadtestSpecError, LoadtestError, LiveNetworkError) as exc:
        return failed("loadtest", str(exc), 2)
    o = result.summary["overall"]
    headline = {k: o[k] for k in ("requests", "failures", "per_s", "p50_ms", "p99_ms", "acknowledged")}
    print(
        json.dumps(
            {"ok": result.ok, "failed": list(result.failed), **headline, "report": str(result.out / "report.html")}
        )
    )
    for check in result.summary["guarantees"]:
        if not check["ok"]:
            print(f"crossroads loadtest: BROKEN: {check['name']}: {check['detail']}", file=sys.stderr)
    return 0 if result.ok else 1
