"""Journeys: what a message does that does not depend on the state of the network, drawn at once.

A message's service time at each station it visits, the latency of each link it crosses and
whether a lossy link loses it depend only on the message (its class, its route) and on chance,
never on the queues. So they are drawn when the exchange is created, for all its legs, laid out
as its itinerary says (network/itineraries.py), and the model's hot path (courier.py) only looks
them up. The draws are common random numbers: they come from a stream keyed by the exchange (its
source and the batch of that source's arrivals it was created in, network/arrivals.py), not by
the order in which stations happen to serve, so a run cut into slices (network/slicing.py) gives
every message the very draws the whole run gives it; what differs between the two is then only
what the cut itself changes, the queues.
"""

from __future__ import annotations

import numpy as np

from network.itineraries import Flat, Itineraries

__all__ = ["LOST_BY_CHANCE", "draw_journeys"]

LOST_BY_CHANCE = -1.0  # the draw of a crossing whose link loses the message


def _starts(lengths: np.ndarray) -> np.ndarray:
    out = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=out[1:])
    return out


def _ragged(flat: Flat, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The values of itineraries `ids` in `flat`, end to end; their lengths; where each begins."""
    values, start, length = flat.arrays()
    lengths = length[ids]
    begins = _starts(lengths)
    index = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(begins - start[ids], lengths)
    return values[index], lengths, begins


def draw_journeys(
    itineraries: Itineraries, ids: np.ndarray, created: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The draws of one batch of exchanges (itinerary ids, creation times), end to end, and
    where each exchange's draws begin and end (each is as long as its itinerary's stops, the last
    one its creation time)."""
    distributions = itineraries.parts.distributions
    codes, lengths, begins = _ragged(itineraries.codes, ids)
    draws = distributions.sample(codes, rng)
    if itineraries.extra.size:
        at, counts, _ = _ragged(itineraries.extra_at, ids)
        extra, _, _ = _ragged(itineraries.extra, ids)
        draws += np.bincount(
            at + np.repeat(begins, counts), weights=distributions.sample(extra, rng), minlength=len(draws)
        )
    draws[begins + lengths - 1] = created
    if itineraries.lossy.size:
        lossy, counts, _ = _ragged(itineraries.lossy, ids)
        chance, _, _ = _ragged(itineraries.loss, ids)
        lost = rng.random(len(lossy)) < chance
        draws[(lossy + np.repeat(begins, counts))[lost]] = LOST_BY_CHANCE
    return draws, begins, begins + lengths
