"""One simulated message on its way along a path of stations."""

from __future__ import annotations

from network.plan import Hop, Route

__all__ = ["Message"]


class Message:
    """A message travelling a path; `pos` is the hop it is at (being queued or served there).

    `terminal` is the index of the delivery this message is (its availability group), or -1 for
    the submit leg of a route that fans out into deliveries where that leg ends.
    `counted` says the exchange was created inside the measured window.
    """

    __slots__ = ("cls", "counted", "created", "kind", "path", "pos", "route", "size", "source", "terminal")

    def __init__(
        self,
        *,
        created: float,
        path: tuple[Hop, ...],
        route: Route,
        terminal: int,
        kind: int,
        cls: int,
        size: int,
        source: int,
        counted: bool,
    ) -> None:
        self.created = created
        self.path = path
        self.pos = 0
        self.route = route
        self.terminal = terminal
        self.kind = kind
        self.cls = cls
        self.size = size
        self.source = source
        self.counted = counted

    def terminals(self) -> int:
        """How many terminal messages this one stands for (all deliveries, for a submit leg)."""
        return len(self.route.deliveries) if self.terminal < 0 else 1
