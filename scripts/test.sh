#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need
# (Debian packages), makes sure a PostgreSQL server answers (the local one, or
# a throwaway cluster), then runs the lint gates and every test, and builds
# and checks the Debian package.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

# 1. Debian packages the tests drive for real (systemd for systemd-analyze,
#    which checks the unit in deploy/).
need=()
command -v squid >/dev/null 2>&1 || [ -x /usr/sbin/squid ] || need+=(squid)
command -v logrotate >/dev/null 2>&1 || [ -x /usr/sbin/logrotate ] || need+=(logrotate)
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v adduser >/dev/null 2>&1 || [ -x /usr/sbin/adduser ] || need+=(adduser)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
[ -e /usr/share/zoneinfo/America/St_Johns ] || need+=(tzdata)
command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 \
    || need+=(postgresql)
if [ "${#need[@]}" -gt 0 ]; then
    log "installing ${need[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "the tests need: ${need[*]}; install them (sudo apt-get install ${need[*]})" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# 2. PostgreSQL: DATABASE_URL if set, else 127.0.0.1:5432, else a throwaway cluster.
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "${DATABASE_URL:-}" ]; then
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
    if ! "$pg_bin/pg_isready" -q -h 127.0.0.1 -p 5432; then
        log "no PostgreSQL on 127.0.0.1:5432; trying the packaged cluster"
        version=$(basename "$(dirname "$pg_bin")")
        pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
        sleep 1
    fi
    if ! "$pg_bin/pg_isready" -q -h 127.0.0.1 -p 5432; then
        port=54329
        data=$(mktemp -d /tmp/egress-audit-pg.XXXXXX)
        log "starting a throwaway PostgreSQL cluster in $data on port $port"
        chown postgres "$data" 2>/dev/null || true
        as_pg=()
        [ "$(id -u)" -eq 0 ] && as_pg=(runuser -u postgres --)
        "${as_pg[@]}" "$pg_bin/initdb" -D "$data" -U postgres -A trust >/dev/null
        "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$data" -o "-p $port -k $data -c listen_addresses=127.0.0.1" \
            -l "$data/server.log" -w start >/dev/null
        trap '"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$data" -m fast stop >/dev/null 2>&1 || true' EXIT
        export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
    fi
fi
log "PostgreSQL for tests: ${DATABASE_URL%%@*}@… (host part hidden)"

# 3. Lint gates.
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings

# 4. Every test.
log "cargo test"
cargo test --no-fail-fast 2>&1

# 5. The Debian package: built once here rather than in `cargo test`, since
#    it needs a release build.
if ! command -v cargo-deb >/dev/null 2>&1; then
    log "installing cargo-deb (it compiles for a few minutes)"
    cargo install cargo-deb --locked
fi
log "cargo deb"
deb=$(cargo deb)
log "checking $deb"
scripts/check-deb.sh "$deb"
if [ "$(id -u)" -eq 0 ]; then
    log "installing, running and purging $deb"
    scripts/install-deb.sh "$deb"
else
    echo "installing the package needs root: run scripts/install-deb.sh $deb as root" >&2
    exit 1
fi
