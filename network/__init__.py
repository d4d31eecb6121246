"""The modelled network and the what-if simulation (SimPy).

One concept per module, in the order a run goes through them:

  run.py          load -> plan -> replications -> summary, and the run folder's files
  explicit.py     a scenario's explicit network (queueing exercises) compiled into a Plan
  world_plan.py   the network of the synthetic world compiled into a Plan: graph.py (networkx
                  graph, cached paths through the core), agencies.exchanges.traffic (what each
                  traffic source sends, decided by the core's own crossroads.routing.route),
                  layout.py (drawing)
  compile.py      what both compilers share: message classes, service times, arrival segments
                  (profiles.py), timed actions and random failures
  plan.py         the Plan: plain, picklable data a replication runs from
  model.py        one replication: stations (booked.py: worked out on arrival; station.py:
                  event-driven, for those that can fail or change), links (link.py), arrivals
                  (arrivals.py) with every draw of their messages made at once (journeys.py),
                  messages taken along their routes compiled into itineraries (itineraries.py;
                  courier.py, the hot path), the SimPy event it schedules (due.py), random draws
                  (sampling.py), statistics (recorder.py, series.py)
  replications.py replications, whole or in time slices (slicing.py; the overlap from the fluid
                  backlog, backlog.py), here, in local worker processes, or on a Dask cluster,
                  with a progress bar (meter.py)
  summary.py      estimates with 95% confidence intervals (crossroads.statistics), per-interval series
  compare.py      two runs' summaries compared (Welch)
"""
