"""Valid exchanges of a synthetic world: one generator for the simulation, the live network and people.

  draws.py     who asks, about whom, under which deliberation, which employer and workers:
               the seeded choices every exchange is made of (`Draws`), written once
  asked.py     an exchange put together around the fields given (`fill`), the rest drawn; and
               `prepare`, which draws until it routes: `crossroads send`
  samples.py   whole random valid exchanges as Envelopes (`Sample`), filled in around values drawn
               at random: the demo, `crossroads send --random`, the load users, fuzzing, the crash
               load and the core benchmark
  traffic.py   what a simulated traffic source sends, as routing keys (`RequestMaker`): the
               simulation's pools, without protobuf
  decision.py  the routing decision the core takes for an envelope over the world (`expected_decision`)

Same world and same rng state -> same exchange, in every one of them.
"""

from agencies.exchanges.asked import DIMONA_TYPES, FAMILIES, Ask, Prepared, WorkerLine, fill, prepare
from agencies.exchanges.decision import expected_decision
from agencies.exchanges.draws import Draws, NoExchange
from agencies.exchanges.samples import KINDS, Sample, citizen_consultation, consultation, sample_any, with_fresh_id
from agencies.exchanges.traffic import MAX_SUBJECTS, Drawn, RequestMaker

__all__ = [
    "DIMONA_TYPES",
    "FAMILIES",
    "KINDS",
    "MAX_SUBJECTS",
    "Ask",
    "Drawn",
    "Draws",
    "NoExchange",
    "Prepared",
    "RequestMaker",
    "Sample",
    "WorkerLine",
    "citizen_consultation",
    "consultation",
    "expected_decision",
    "fill",
    "prepare",
    "sample_any",
    "with_fresh_id",
]
