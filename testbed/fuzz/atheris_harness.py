"""Coverage-guided fuzzing (atheris / libFuzzer) of the core's pure part: parse, `check_envelope`, `route`.

`atheris_campaign` runs the harness `_atheris_main` in a process of its own: `python -c
_ATHERIS_BOOT WORLD AS_OF [libFuzzer flags] CORPUS`, which imports it from this module.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from crossroads.directory import DirectoryStore
from crossroads.domain import AgencyId
from crossroads.knowledge_io import load_knowledge
from protos import messages_pb2 as pb
from testbed import processes
from testbed.fuzz.world import FuzzWorld


def atheris_campaign(world: FuzzWorld, runs: int, seed: int, folder: Path) -> dict[str, Any]:
    """`runs` coverage-guided inputs (atheris / libFuzzer, in a process of its own) through the
    pure part of the pipeline: parse an Envelope, `check_envelope`, `route`. Seeded with the corpus.

    Returns {"runs", "exit_code", "seconds", "tail"}; exit_code 0 = no crash. Needs atheris.
    """
    corpus = folder / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for i, sample in enumerate(world.corpus):
        sender = world.senders.index(sample.sender) % 256
        (corpus / f"seed-{i}").write_bytes(bytes([sender]) + sample.envelope.SerializeToString())
    started = time.perf_counter()
    args = [
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
    log = folder / "atheris.log"  # libFuzzer reports on stderr
    log.unlink(missing_ok=True)
    code, out = processes.run("atheris", args, log=log, timeout_s=None)
    with log.open("a", encoding="utf-8") as f:
        f.write(out)
    tail = processes.log_tail(log, 3).splitlines()
    return {
        "runs": runs,
        "exit_code": code,
        "seconds": round(time.perf_counter() - started, 1),
        "tail": tail,
    }


# Coverage is collected for the modules imported inside instrument_imports: the core's pure part.
_ATHERIS_BOOT = """
import sys, atheris
with atheris.instrument_imports(include=["crossroads"]):
    import crossroads.identifiers, crossroads.validation, crossroads.routing, crossroads.domain
from testbed.fuzz.atheris_harness import _atheris_main
_atheris_main(sys.argv[1:])
"""


def _atheris_main(argv: Sequence[str]) -> None:
    """The harness of `atheris_campaign`: WORLD AS_OF [libFuzzer flags] CORPUS (see _ATHERIS_BOOT)."""
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
