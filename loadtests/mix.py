"""The load test's traffic mix: weights per kind of user and message, given or taken from a
simulation scenario's `traffic:` sources.

One place holds the traffic of a what-if (`scenarios/*.yaml`, validated by
`scenarios.schema`); a load test can reuse it rather than repeat it. Each source weighs
`rate x multiplier x the surges active at the chosen time` (the scenario's surge events, with
the schema's meaning of `at`/`until`: seconds after the warm-up). The daily, weekly and monthly
profiles are not applied: they live in `network.profiles`, on this package's own floor, and
a load test of a minute has no hour of the day anyway (name a surge time to get a peak).

Sources map onto the load test's kinds of user: consultations sent by the portal are citizens
consulting their own file, other consultations, integrations and mutations are agencies,
DIMONA, DmfA and DRS are employers (whoever files them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scenarios.schema import Event, Scenario, Source

__all__ = ["Mix", "mix_from_scenario", "mix_from_sources", "surge_factor"]

_EMPLOYER_KINDS = frozenset({"DIMONA", "DMFA", "DRS"})
_PORTAL = "portal"


@dataclass(frozen=True, kw_only=True, slots=True)
class Mix:
    """Relative weights per kind of user ("employer", "agency", "citizen") and kind of message.

    `origin` says where the weights came from (the section itself, or a simulation's traffic).
    """

    weights: Mapping[str, Mapping[str, float]]
    origin: str = "explicit"

    def user_weights(self) -> dict[str, float]:
        """Each kind of user's share of the traffic (sums to 1); kinds of user with none are left out."""
        totals = {user: sum(kinds.values()) for user, kinds in self.weights.items()}
        whole = sum(totals.values())
        return {user: w / whole for user, w in totals.items() if w > 0}

    def kind_weights(self, user: str) -> dict[str, float]:
        """The kinds of message a user of kind `user` sends, with their weights (positive only)."""
        return {kind: w for kind, w in self.weights.get(user, {}).items() if w > 0}


def surge_factor(events: Sequence[Event], source: str, at: float | None) -> float:
    """The product of the multipliers of the surges on `source` active at `at` (1.0 when `at` is None)."""
    if at is None:
        return 1.0
    factor = 1.0
    for e in events:
        active = e.action == "surge" and e.source in (None, source) and e.at <= at
        if active and (e.until is None or at < e.until) and e.multiplier is not None:
            factor *= e.multiplier
    return factor


def mix_from_sources(
    sources: Sequence[Source], events: Sequence[Event] = (), at: float | None = None
) -> dict[str, dict[str, float]]:
    """Weights per kind of user and kind of message, summed over `sources` (see the module doc)."""
    weights: dict[str, dict[str, float]] = {}

    def add(user: str, kind: str, weight: float) -> None:
        if weight > 0:
            weights.setdefault(user, {})
            weights[user][kind] = weights[user].get(kind, 0.0) + weight

    for s in sources:
        weight = s.rate * s.multiplier * surge_factor(events, s.name, at)
        if s.kind in _EMPLOYER_KINDS:
            add("employer", s.kind, weight)
        elif s.kind == "CONSULTATION" and s.senders:
            portal = s.senders.get(_PORTAL, 0.0) / sum(s.senders.values())
            add("citizen", s.kind, weight * portal)
            add("agency", s.kind, weight * (1 - portal))
        else:
            add("agency", s.kind, weight)
    return weights


def mix_from_scenario(scenario: Scenario[Any], at: float | None, file_name: str) -> Mix:
    """The mix of the traffic of `scenario`, read from `file_name` (surges as at `at`); no weights
    when no source has a positive rate."""
    weights = mix_from_sources(scenario.traffic, scenario.events, at)
    when = "" if at is None else f" at {at:g} s"
    return Mix(weights=weights, origin=f"traffic of {scenario.name} ({file_name}){when}")
