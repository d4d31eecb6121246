"""The generated gRPC modules in protos/ match the .proto files (`make protos` rebuilds them)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTOS = ("protos/messages.proto", "protos/services.proto")


def test_generated_modules_are_fresh(tmp_path: Path) -> None:
    (tmp_path / "protos").mkdir()
    for proto in PROTOS:
        shutil.copy(ROOT / proto, tmp_path / proto)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I.",
            "--python_out=.",
            "--grpc_python_out=.",
            "--pyi_out=.",
            *PROTOS,
        ],
        cwd=tmp_path,
        check=True,
    )
    generated = sorted(p.name for p in (tmp_path / "protos").iterdir() if p.suffix in {".py", ".pyi"})
    assert generated, "protoc generated nothing"
    stale = [
        name for name in generated if (ROOT / "protos" / name).read_bytes() != (tmp_path / "protos" / name).read_bytes()
    ]
    assert not stale, f"stale generated modules, run `make protos`: {stale}"
