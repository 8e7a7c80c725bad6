"""Generate Python code from protos/ into gen/ with grpc_tools.protoc.

`make protos` runs this; gen/ is not committed, so there is nothing to drift.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "gen"


def main() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    # mypy-protobuf's plugins write the .pyi: messages with a ValueType per enum, typed stubs and servicers.
    plugins = Path(sys.executable).parent
    args = ["protoc", f"-I{PROTOS}", f"-I{well_known}", f"--python_out={OUT}", f"--grpc_python_out={OUT}",
            f"--plugin=protoc-gen-mypy={plugins / 'protoc-gen-mypy'}", f"--mypy_out={OUT}",
            f"--plugin=protoc-gen-mypy_grpc={plugins / 'protoc-gen-mypy_grpc'}", f"--mypy_grpc_out={OUT}", *files]
    if protoc.main(args) != 0:
        print("protoc failed", file=sys.stderr)  # noqa: T201
        return 1
    for directory in [p for p in OUT.rglob("*") if p.is_dir()]:
        (directory / "__init__.py").touch()
    (OUT / "ur" / "py.typed").touch()
    print(f"generated {len(files)} proto files into {OUT.relative_to(ROOT)}/")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
