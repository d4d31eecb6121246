"""Locust users and load shapes against the live crossroads core (floor 4: imports the core and the world).

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
"""
