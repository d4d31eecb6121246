"""Where a scenario's numbers come from: assumed, or calibrated (and from what).

The numbers that say how fast the network works are the distributions of its `network:`
section: every station's service `time` and `per_work` times, every link's `latency` (both
network models; `speed_numbers` lists those the file writes, by YAML path). A scenario's
optional `sources:` maps the YAML path of one of them, or of a section holding some, to a text
saying where it came from, e.g.

    sources:
      network.classes.core.time: "runs/calibration/calibrated.yaml, core.cpu_ms (2026-12-05)"
      network.links: "calibrated: measured with ping on our WAN, 2026-11"

A number is then "calibrated: TEXT" (the most specific path naming it wins; the text may start
with "calibrated:" or not), every other one "assumed" (`provenance`). A path must name an entry
of the file that is, or holds, one of those numbers: anything else is refused where it is
written (`check_sources`), so that no source is silently left out of the report.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from scenarios import sections as s
from scenarios.documents import Document, path_text

__all__ = ["ASSUMED", "CALIBRATED", "EntryPath", "Numbers", "Provenance", "check_sources", "describe", "provenance"]
__all__ += ["speed_numbers"]

ASSUMED = "assumed"
CALIBRATED = "calibrated: "
Written = s.Exponential | s.Deterministic | s.Lognormal | s.Uniform
EntryPath = tuple[str | int, ...]  # keys and list indexes, from the top of the file
Numbers = list[tuple[EntryPath, Written]]
_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True, slots=True)
class Provenance:
    """One number of the network: its YAML path, a short rendering of it, and its source
    ("assumed", or "calibrated: TEXT")."""

    path: str
    value: str
    source: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "value": self.value, "source": self.source}


def describe(dist: Written) -> str:
    """A distribution in a few words: "exponential mean 0.004 s", "lognormal mean 0.012 s, cv 0.8"."""
    if isinstance(dist, s.Exponential):
        return f"exponential mean {dist.mean:g} s"
    if isinstance(dist, s.Deterministic):
        return f"deterministic {dist.value:g} s"
    if isinstance(dist, s.Lognormal):
        return f"lognormal mean {dist.mean:g} s, cv {dist.cv:g}"
    return f"uniform {dist.low:g} to {dist.high:g} s"


def _station(at: EntryPath, service: s.Service | s.NodeService) -> Iterator[tuple[EntryPath, Written]]:
    if service.time is not None:
        yield (*at, "time"), service.time
    for work, dist in service.per_work.items():
        yield (*at, "per_work", work), dist


def speed_numbers(network: s.ExplicitNetwork | s.WorldNetwork) -> Numbers:
    """The service times and latencies `network` writes, by YAML path, in the order written.

    What a file leaves out is not listed: a named node's time taken from its class is its
    class's number; a link without a latency has none (no delay)."""
    stations: list[tuple[EntryPath, s.Service | s.NodeService]]
    links: list[tuple[EntryPath, s.Link]]
    if isinstance(network, s.ExplicitNetwork):
        stations = [(("network", "stations", name), x) for name, x in network.stations.items()]
        links = [(("network", "links", i), x) for i, x in enumerate(network.links)]
    else:
        stations = [(("network", "classes", name), x) for name, x in network.classes.items()]
        stations += [(("network", "nodes", name), x) for name, x in network.nodes.items()]
        links = [(("network", "links", name), x) for name, x in network.links.items()]
    numbers = [number for at, service in stations for number in _station(at, service)]
    return numbers + [((*at, "latency"), x.latency) for at, x in links if x.latency is not None]


def _entry(data: Any, text: str) -> EntryPath | None:
    """The path of the entry `text` names in `data` ("a.b[0].c" or "a.b.0.c"), None if none."""
    steps = list(_STEP.finditer(text))
    if not steps or "".join(m.group(0) for m in steps) != text or text.startswith("."):
        return None
    path: list[str | int] = []
    for m in steps:
        key, index = m.group(1), m.group(2)
        if isinstance(data, list) and (index or key).isdigit() and int(index or key) < len(data):
            step: str | int = int(index or key)
        elif isinstance(data, Mapping) and key is not None and key in data:
            step = key
        else:
            return None
        path.append(step)
        data = data[step]
    return tuple(path)


def check_sources(doc: Document, sources: Mapping[str, str], numbers: Numbers) -> dict[EntryPath, str]:
    """`sources` by the path of the entry each names in `doc`, its text without "calibrated:".

    Raises the document's error at `sources.KEY` (with its line and column) for a key that names
    no entry of the file, or an entry that neither is nor holds one of `numbers`, or for a text
    that says nothing but "calibrated:"."""
    example = path_text(numbers[0][0]) if numbers else "network.classes.core.time"
    out: dict[EntryPath, str] = {}
    for key, text in sources.items():
        entry = _entry(doc.data, key)
        if entry is None:
            raise doc.refuse(("sources", key), f"names no entry of this scenario; expected a path such as {example}")
        if not any(at[: len(entry)] == entry for at, _ in numbers):
            expected = f"the path of one (e.g. {example}) or of a section holding some"
            raise doc.refuse(("sources", key), f"names no service time or latency; expected {expected}")
        out[entry] = text.strip().removeprefix(CALIBRATED.strip()).strip()
        if not out[entry]:
            raise doc.expected(("sources", key), "a text saying where the number comes from", text)
    return out


def provenance(numbers: Numbers, sources: Mapping[EntryPath, str]) -> tuple[Provenance, ...]:
    """Each of `numbers` with its source: the text of the longest path in `sources` that names
    it or a section holding it ("calibrated: TEXT"), else "assumed"."""
    out = []
    for at, dist in numbers:
        named = [p for p in sources if at[: len(p)] == p]
        source = CALIBRATED + sources[max(named, key=len)] if named else ASSUMED
        out.append(Provenance(path_text(at), describe(dist), source))
    return tuple(out)
