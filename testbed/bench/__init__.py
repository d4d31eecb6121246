"""The benchmarks: each measures on this machine and reports its figures against their goals.

  goals.py     the goals, the figures' vocabulary (goal, medians, machine, files)
  core.py      routed consultations through the core against a raw one-hop mTLS proxy
  audit.py     durable audit appends and `audit verify`
  world.py     the national world's build time and memory
  up.py        ~3,000 agencies serving: start-up time and memory
  capacity.py  the highest rate with p99 held, core against the raw proxy (open loop, Locust)
  soak.py      a steady rate for minutes: is memory flat?
  all.py       all of them, in OUT/bench.json (`make bench`)
`crossroads bench` (testbed/commands/bench.py) runs them.
"""
