"""The model's own timed event: a SimPy Timeout reduced to what the hot path needs.

Every service completion and every link crossing is one of these (millions a simulated day),
so the constructor is trimmed: it takes its one callback at once and skips Timeout's check of a
negative delay (the model's delays are drawn from non-negative distributions). It is an
ordinary `simpy.Event`, scheduled with the public `Environment.schedule`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import simpy
from simpy.events import NORMAL

__all__ = ["Due"]


class Due(simpy.Event):  # type: ignore[misc]  # simpy is untyped here
    """An event that fires `delay` from now with `value`, calling `callback(event)`."""

    def __init__(
        self, env: simpy.Environment, delay: float, value: Any, callback: Callable[[simpy.Event], None]
    ) -> None:
        # inlined from Event.__init__ and Timeout.__init__ on purpose (the model's hot path)
        self.env = env
        self.callbacks = [callback]
        self._value = value
        self._ok = True
        env.schedule(self, NORMAL, delay)
