"""The crash-consistency harness: proof that a crash of the core or of an agency host costs nothing acknowledged.

`python -m testbed.crash --out DIR [--kills 20 --host-kills 4 --seed 0]` or `crossroads crash`
(options: `testbed.crash.options`). One concept a module:
- `run`: one run, from the world to DIR/crash.json (`run_crash`, `CrashRun`);
- `core`: the core as a child process, killed with SIGKILL and started again on its port;
- `target`: channels to whichever core is running now;
- `load`: the seeded load, every message re-sent with its id until acknowledged;
- `heads`: the signed audit head before a kill and the consistency proof after the restart;
- `checks`: the guarantees, on the state folder of the quiet network.
"""

from testbed.crash.run import CRASH_JSON, CrashError, CrashResult, CrashRun, run_crash

__all__ = ["CRASH_JSON", "CrashError", "CrashResult", "CrashRun", "run_crash"]
