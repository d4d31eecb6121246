"""The load shape: the scenario's stages, one after another, then stop.

Locust asks `tick()` about once a second (on the master only, in distributed runs) for the
user count and spawn rate; the target rate of a stage is not Locust's business: each user reads
it from the same spec (`users.CrossroadsUser._pace`), so the shape and the pacing agree.
Importing this module imports Locust, which monkey-patches the process for gevent: only the
locustfile imports it.
"""

from __future__ import annotations

from typing import Any

from locust import LoadTestShape

from loadtests.context import options_of
from loadtests.spec import LoadtestSpec

__all__ = ["ScenarioShape"]


class ScenarioShape(LoadTestShape):  # type: ignore[misc]  # locust ships no type hints
    """The stages of the `loadtest:` section named by --crossroads-scenario (with the overrides)."""

    _spec: LoadtestSpec | None = None

    def spec(self) -> LoadtestSpec:
        if self._spec is None:
            runner: Any = self.runner
            self._spec = options_of(runner.environment.parsed_options).spec()
        return self._spec

    def tick(self) -> tuple[int, float] | None:
        return self.spec().shape_at(self.get_run_time())
