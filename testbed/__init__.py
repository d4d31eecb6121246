"""The composition root (floor 5): the `crossroads` command and what puts the floors below to work.

  cli.py          the `crossroads` command; commands/ one module per sub-command (parse, call,
                  print), arguments.py what they share, state_commands.py audit/outbox/pki
  processes.py    the one owner of child processes: start, wait for, stop
  live.py         the live network up and down (world_files.py: its state folder's world files)
  proxy.py        the raw one-hop proxy the core is measured against
  faults.py       timed faults on a live network (kill, freeze, slow a process)
  loadtest.py     a load-test run: the network, Locust, faults, the checks, the report
  crash/          the crash harness's kills and restarts (its load and proofs: loadtests/crash/)
  atheris_child   the fuzz campaign's coverage-guided part in a child process (the campaign:
                  loadtests/fuzz/)
  sending.py      exchanges sent as agencies, with their receipts (`crossroads send`)
  simulation.py   a what-if run to its folder, with its report
  demo/           `crossroads demo`, told as it happens
  bench/          the benchmarks, each against its goal; bench_sim.py the simulation's speed
"""
