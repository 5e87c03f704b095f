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
node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' \
  || die "Node.js 20 or newer is needed (found $(node --version))"
