"""The routing decision the core takes for an envelope, over a world's directory (pure).

`expected_decision` validates an envelope as the core does (`crossroads.validation`) and
routes it with `crossroads.routing.route` over the world's knowledge and directory rows: the
fill-in (asked.py) draws until it routes, and tests and the demo check what the core did.
"""

from __future__ import annotations

from collections.abc import Sequence

from agencies.world import World
from crossroads.domain import AgencyId, DirectoryEntry
from crossroads.routing import Decision, Denied, route
from crossroads.validation import Invalid, check_envelope
from protos import messages_pb2

__all__ = ["expected_decision"]


def expected_decision(
    world: World,
    sender: AgencyId,
    envelope: messages_pb2.Envelope,
    files: Sequence[DirectoryEntry] | None = None,
) -> Decision:
    """The routing decision the core takes for `envelope` from `sender`, over the world's directory.

    `files` stands for the directory rows of the persons concerned when the live directory has
    changed since the world was built (integrations); by default they are the world's. An
    envelope the core would refuse as invalid comes back as Denied("invalid", reason).
    """
    request = check_envelope(envelope, sender, world.spec.as_of)
    if isinstance(request, Invalid):
        return Denied("invalid", str(request))
    rows = files if files is not None else [e for niss in request.subjects for e in world.files_of(niss)]
    return route(request, world.knowledge, rows)
