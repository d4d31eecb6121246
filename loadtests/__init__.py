"""Traffic against the crossroads core, and what must hold after it (floor 4: imports the core and the world).

locustfile   the entry point: `locust -f loadtests/locustfile.py --crossroads-state DIR` (patches gRPC for gevent)
users        EmployerUser, AgencyUser, CitizenUser (and RawHopUser, the proxy baseline)
client       mutual-TLS channels per identity, and what each answer means
context      the options and what the users of one Locust process share
spec, mix    the `loadtest:` section of a scenario; a mix from a simulation's traffic
pacing       open-loop sends on a schedule; shape: the stages as a Locust LoadTestShape
record       the per-process request logs the checks and the report read
faults       timed faults on a live network (a host is restarted on its port by agencies.host --port)
guarantees   the audit, delivery and budget checks; metrics: figures from the request logs
resources    CPU and memory of the processes; capacity: the rate staircase of the benchmark
cpu          CPU per process and per thread name from /proc, over a window
loadgen      the benchmarks' gRPC load generator: closed loop, or open loop one level at a time
             (level: rate, schedule, records; level_figures; sender, sender_pool: K processes;
             prepared: the requests it sends)
report, figures  the HTML report
flood        one sender as fast as it can, recording how it was turned away
fuzz/        hostile input against the whole gRPC surface (Hypothesis; atheris in a child process
             the caller starts); run against in-process cores and hosts
crash/       the crash harness's traffic and proofs: channels that follow a restarted core, the
             load re-sent until acknowledged, the audit heads across a kill, the checks
No program is started from here: testbed/processes.py starts them (sender_pool's workers are the generator's own).
"""
