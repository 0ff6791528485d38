"""Generate Python, .pyi and gRPC code for every proto under protos/ into an output folder.

Used by `make proto` (into libs/protos/src) and `make proto-check` (into a temp folder, then diffed).
"""

from __future__ import annotations

import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc


def main(out: str) -> int:
    root = Path(__file__).resolve().parent.parent
    src = root / "protos"
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p.relative_to(src)) for p in src.rglob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{src}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    rc = protoc.main(args)
    if rc != 0:
        return rc
    # Every generated folder is a regular package, so `import vigil.audit.v1` works everywhere.
    for d in [out_dir / "vigil", *(p for p in (out_dir / "vigil").rglob("*") if p.is_dir())]:
        init = d / "__init__.py"
        if not init.exists():
            init.write_text("")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
