"""`crossroads demo`: the live network and a what-if simulation, told as it happens (testbed/demo/)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from testbed.commands.arguments import add_command, add_hosts, add_out, failed
from testbed.demo import DEFAULT_OUT, run_demo
from testbed.live import DEFAULT_HOSTS, LiveNetworkError

__all__ = ["register"]

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
    what = "bring the live network up, send exchanges, show the audit log, stop"
    demo = add_command(sub, "demo", _run, help_text=what, description=_HELP)
    add_out(demo, "run folder", default=DEFAULT_OUT)
    add_hosts(demo, DEFAULT_HOSTS)


def _run(args: argparse.Namespace) -> int:
    try:
        return run_demo(args.out, hosts=args.hosts)
    except LiveNetworkError as exc:
        return failed("demo", str(exc), 1)
    except KeyboardInterrupt:
        print(file=sys.stderr)  # after the ^C the terminal shows
        return failed("demo", "interrupted; the network was stopped", 130)
