"""The crash harness's traffic and proofs: what runs against a core that is killed and restarted,
and what must hold afterwards. The kills themselves are the testbed's (testbed/crash/: `crossroads
crash`); nothing here starts or stops a process.

  target   channels to whichever core is running now (fresh ones after each restart)
  load     the seeded load, every message re-sent with its id until acknowledged (`Ack`)
  heads    the signed audit head before a kill, the consistency proof after the restart
  checks   the guarantees on the quiet network's state folder; those a load test checks too
           come from loadtests.guarantees
"""
