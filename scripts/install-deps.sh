#!/usr/bin/env bash
# Installs what `make dev` and `make test` need, when it is missing; does nothing when all is there.
# Debian packages are installed only when running as root; otherwise it names them and stops.
# npm packages are installed by the Makefile (npm ci, from package-lock.json).
set -euo pipefail

PG_MAJOR=15
die() { printf 'install-deps: error: %s\n' "$*" >&2; exit 1; }

missing=()
[[ -x /usr/lib/postgresql/$PG_MAJOR/bin/postgres ]] || missing+=("postgresql-$PG_MAJOR")
command -v psql >/dev/null || missing+=("postgresql-client-$PG_MAJOR")
[[ -f /usr/share/postgresql/$PG_MAJOR/extension/pgtap.control ]] || missing+=("postgresql-$PG_MAJOR-pgtap")
command -v pg_prove >/dev/null || missing+=(libtap-parser-sourcehandler-pgtap-perl)
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
command -v curl >/dev/null || missing+=(curl)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)   # the browser test, driven by playwright-core

if ((${#missing[@]})); then
  if [[ $(id -u) != 0 ]]; then
    die "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
  fi
  printf 'install-deps: installing %s\n' "${missing[*]}" >&2
  # Debian would create and start a system cluster on port 5432 with the server package; we run our own.
  if [[ -d /etc/postgresql-common ]] || mkdir -p /etc/postgresql-common; then
    grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf \
      || echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
  fi
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get could not install: ${missing[*]}"
fi

command -v cargo >/dev/null || die "the Rust toolchain (cargo) is missing: install it with rustup"

# The Worker's toolchain: the wasm target, worker-build, and the wasm-bindgen CLI of exactly the version the
# lockfile resolves (worker-build refuses a mismatch, and its own download of the CLI cannot work here).
WORKER_BUILD_VERSION=0.8.7
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' "$(dirname "$0")/../Cargo.lock")
[[ -n $WASM_BINDGEN_VERSION ]] || die "cannot read wasm-bindgen's version from Cargo.lock"
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || die "cannot add the wasm32-unknown-unknown target (rustup target add wasm32-unknown-unknown)"
fi
if [[ $(wasm-bindgen --version 2>/dev/null) != "wasm-bindgen $WASM_BINDGEN_VERSION" ]]; then
  printf 'install-deps: installing wasm-bindgen-cli %s (about 2 minutes)\n' "$WASM_BINDGEN_VERSION" >&2
  cargo install --quiet wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" || die "cannot install wasm-bindgen-cli $WASM_BINDGEN_VERSION"
fi
if [[ $(worker-build --version 2>/dev/null) != *"$WORKER_BUILD_VERSION" ]]; then
  printf 'install-deps: installing worker-build %s\n' "$WORKER_BUILD_VERSION" >&2
  cargo install --quiet worker-build --version "$WORKER_BUILD_VERSION" || die "cannot install worker-build $WORKER_BUILD_VERSION"
fi
node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' \
  || die "Node.js 20 or newer is needed (found $(node --version))"

# Python tools of the end-to-end suite (schemathesis), pinned in tests/requirements.txt, in a venv of ours.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=$ROOT/.local/venv
if [[ ! -f $VENV/.installed || $ROOT/tests/requirements.txt -nt $VENV/.installed ]]; then
  command -v python3 >/dev/null || die "python3 is missing"
  printf 'install-deps: installing the Python test tools into .local/venv\n' >&2
  python3 -m venv "$VENV" || die "python3 cannot make a venv (install python3-venv)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/tests/requirements.txt" \
    || die "cannot install tests/requirements.txt"
  touch "$VENV/.installed"
fi
