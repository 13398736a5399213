"""Generate the protobuf messages and gRPC stubs of ``proto/`` (they are never committed).

Two users, one generator (grpcio-tools, pinned in pyproject.toml so that its gencode matches
the protobuf runtime the package declares):

- packaging: this module is the project's build backend (setuptools' own, re-exported; loaded
  from tools/ through ``backend-path``) and ``BuildPy`` its ``build_py``
  (``[tool.setuptools.cmdclass]``), so every wheel, also one built from the sdist, carries the
  generated modules; an editable install generates them in the source tree;
- development: ``./build.sh`` runs ``python tools/protogen.py`` to regenerate them in place.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from setuptools.build_meta import *  # noqa: F403 (this module is the build backend)
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
GEN_PACKAGE = ("tfprovider_immuta_pg", "protocol", "gen")
SOURCE_GEN_DIR = ROOT.joinpath("src", *GEN_PACKAGE)
PROTOS = ("tfplugin6.proto", "grpc_controller.proto", "grpc_stdio.proto")


def generate(out_dir: Path, proto_dir: Path = PROTO_DIR) -> list[Path]:
    """Write the messages (``*_pb2.py``, ``.pyi``) and stubs (``*_pb2_grpc.py``) into out_dir."""
    from grpc_tools import protoc  # a build requirement, not a run-time one

    out_dir.mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{proto_dir}",
            f"-I{include}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            f"--pyi_out={out_dir}",
            *(str(proto_dir / name) for name in PROTOS),
        ]
    )
    if status != 0:
        raise RuntimeError(f"protoc failed ({status}) on {proto_dir}")
    for stub in out_dir.glob("*_pb2_grpc.py"):
        # protoc writes `import x_pb2`; inside a package the import must be relative.
        text = stub.read_text()
        stub.write_text(re.sub(r"^import (\w+_pb2) as", r"from . import \1 as", text, flags=re.M))
    init = out_dir / "__init__.py"
    init.write_text(
        '"""Generated from proto/ by tools/protogen.py; never edited or committed."""\n'
    )
    return sorted(p for p in out_dir.iterdir() if p.suffix in (".py", ".pyi"))


class BuildPy(build_py):
    """setuptools' build_py that also generates the protocol modules."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            generate(SOURCE_GEN_DIR)
        else:
            self._generated = generate(Path(self.build_lib).joinpath(*GEN_PACKAGE))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), *map(str, getattr(self, "_generated", []))]


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE_GEN_DIR
    generate(target)
