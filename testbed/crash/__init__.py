"""The crash-consistency harness: proof that a crash of the core or of an agency host costs nothing acknowledged.

`python -m testbed.crash --out DIR [--kills 20 --host-kills 4 --seed 0]` or `crossroads crash`
(options: `testbed.crash.options`). What kills and restarts processes is here:
- `run`: one run, from the world to DIR/crash.json (`run_crash`, `CrashRun`);
- `core`: the core as a child process, killed with SIGKILL and started again on its port.
The traffic and the proofs are loadtests/crash/: channels that follow the core (`target`), the
seeded load re-sent until acknowledged (`load`), the audit heads across a kill (`heads`) and
the guarantees on the state folder (`checks`).
"""

from testbed.crash.run import CRASH_JSON, CrashError, CrashResult, CrashRun, run_crash

__all__ = ["CRASH_JSON", "CrashError", "CrashResult", "CrashRun", "run_crash"]
