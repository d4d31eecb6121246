"""Coverage-guided fuzzing (atheris / libFuzzer) of the core's pure part: parse, `check_envelope`, `route`.

atheris never returns from `atheris.Fuzz()`, so the campaign runs in a process of its own:
`python ARGS`, with ARGS from `child_args` (`-c _ATHERIS_BOOT WORLD AS_OF [libFuzzer flags]
CORPUS`, which imports the harness `_atheris_main` from this module). Who starts that process
is the caller's business (the testbed: `testbed.atheris_child.atheris_campaign`, an
`AtherisRunner`); `outcome` turns what came of it into the campaign's figures.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from crossroads.directory import DirectoryStore
from crossroads.domain import AgencyId
from crossroads.knowledge_io import load_knowledge
from loadtests.fuzz.world import FuzzWorld
from protos import messages_pb2 as pb

__all__ = ["LOG_FILE", "AtherisRunner", "child_args", "outcome"]

LOG_FILE = "atheris.log"  # in the campaign's folder; libFuzzer reports on stderr
# (world, runs, seed, folder) -> {"runs", "exit_code", "seconds", "tail"}: a campaign in a child process
AtherisRunner = Callable[[FuzzWorld, int, int, Path], dict[str, Any]]


def child_args(world: FuzzWorld, runs: int, seed: int, folder: Path) -> list[str]:
    """The Python arguments of a child running `runs` coverage-guided inputs through the pure part
    of the pipeline (parse an Envelope, `check_envelope`, `route`), seeded with the world's corpus,
    which this writes to FOLDER/corpus; crashing inputs go to FOLDER as libFuzzer artifacts."""
    corpus = folder / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for i, sample in enumerate(world.corpus):
        sender = world.senders.index(sample.sender) % 256
        (corpus / f"seed-{i}").write_bytes(bytes([sender]) + sample.envelope.SerializeToString())
    return [
        "-c",
        _ATHERIS_BOOT,
        str(world.folder),
        world.as_of.isoformat(),
        f"-runs={runs}",
        f"-seed={seed + 1}",
        "-max_len=8192",
        f"-artifact_prefix={folder}/",
        str(corpus),
    ]


def outcome(runs: int, exit_code: int, seconds: float, tail: str) -> dict[str, Any]:
    """The figures of a campaign: {"runs", "exit_code", "seconds", "tail"}; exit_code 0 = no crash."""
    return {"runs": runs, "exit_code": exit_code, "seconds": round(seconds, 1), "tail": tail.splitlines()}


# Coverage is collected for the modules imported inside instrument_imports: the core's pure part.
_ATHERIS_BOOT = """
import sys, atheris
with atheris.instrument_imports(include=["crossroads"]):
    import crossroads.identifiers, crossroads.validation, crossroads.routing, crossroads.domain
from loadtests.fuzz.atheris_harness import _atheris_main
_atheris_main(sys.argv[1:])
"""


def _atheris_main(argv: Sequence[str]) -> None:
    """The harness of the child: WORLD AS_OF [libFuzzer flags] CORPUS (see _ATHERIS_BOOT)."""
    import atheris  # type: ignore[import-not-found,import-untyped,unused-ignore]  # optional: pip install atheris

    from crossroads.routing import route
    from crossroads.validation import MAX_REASON, Invalid, check_envelope

    folder = Path(argv[0])
    knowledge = load_knowledge(folder / "knowledge.json")
    directory = DirectoryStore.open(folder / "directory.sqlite")
    senders = [*sorted(knowledge.agencies), "nobody"]
    today = dt.date.fromisoformat(argv[1])

    def one_input(data: bytes) -> None:
        if not data:
            return
        sender = AgencyId(senders[data[0] % len(senders)])
        try:
            env = pb.Envelope.FromString(data[1:])
        except DecodeError:
            return
        checked = check_envelope(env, sender, today)
        if isinstance(checked, Invalid):
            if not checked.field or not checked.reason or len(checked.reason) > MAX_REASON:
                raise AssertionError(f"vague or unbounded refusal: {checked}")
            return
        files = directory.files_of_many(checked.subjects) if checked.subjects else []
        route(checked, knowledge, files)

    atheris.Setup(["atheris", *argv[2:]], one_input)
    atheris.Fuzz()
