"""The demo (`crossroads demo`, `make demo`): the live network and a what-if, told as it happens.

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
           its report, the model of the live testbed calibrated at two levels and held against
           a third (each on a network of its own), and where to look next.

A step records what it found in `Demo.results`, written to OUT/demo.json at the end.

  session.py  a demo being run (`Demo`), what it sent (`Sent`), a step (`Step`)
  sending.py  the live steps that send;  account.py  the live steps that tell
  after.py    the steps after the network stopped;  run.py  `run_demo` and the default steps
"""

from testbed.demo.after import load_test, model_loop, what_if
from testbed.demo.run import DEFAULT_STEPS, run_demo
from testbed.demo.session import DEFAULT_OUT, DEMO_SEED, PER_KIND, Demo, Sent, Step

__all__ = [
    "DEFAULT_OUT",
    "DEFAULT_STEPS",
    "DEMO_SEED",
    "PER_KIND",
    "Demo",
    "Sent",
    "Step",
    "load_test",
    "model_loop",
    "run_demo",
    "what_if",
]
