#!/usr/bin/env bash
# Installs a built egress-audit Debian package on this machine for real, runs
# the installed binary as the service's user the way the unit does, and purges
# it again, checking what the maintainer scripts did at each step.
# Usage (as root): scripts/install-deb.sh FILE.deb
# Exits non-zero, naming what went wrong. The machine is left as it was found:
# the package purged, its user, group and state directory removed.
set -euo pipefail
cd "$(dirname "$0")/.."

deb=$(realpath "${1:?usage: scripts/install-deb.sh FILE.deb}")
state=/var/lib/egress-audit
work=$(mktemp -d /tmp/egress-audit-deb.XXXXXX)

fail() { printf 'install-deb: %s\n' "$*" >&2; exit 1; }
step() { printf 'install-deb: %s\n' "$*" >&2; }

[ "$(id -u)" -eq 0 ] || fail "must run as root: it installs and purges the package"
if dpkg-query -W -f='${Status}' egress-audit 2>/dev/null | grep -q 'ok installed'; then
    fail "egress-audit is already installed here; purge it first (dpkg --purge egress-audit)"
fi
getent group proxy >/dev/null \
    || fail "group proxy (Squid's log group) is missing; install squid first"

cleanup() {
    dpkg --purge egress-audit >/dev/null 2>&1 || true
    rm -rf "$state" "$work"
    if getent passwd egress-audit >/dev/null; then
        deluser --quiet --system egress-audit >/dev/null 2>&1 || true
    fi
    if getent group egress-audit >/dev/null; then
        delgroup --quiet --system egress-audit >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

# owner:group mode of a path, or "missing".
perms() { stat -c '%U:%G %a' "$1" 2>/dev/null || echo missing; }
expect() {
    local what=$1 got=$2 want=$3
    [ "$got" = "$want" ] || fail "$what: expected '$want', found '$got'"
}

step "dpkg -i $(basename "$deb")"
dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i failed"; }

# What postinst did: a system user at home in the state directory, in
# Squid's log group; the state directory and a root-only secrets file.
getent passwd egress-audit >/dev/null || fail "postinst did not create user egress-audit"
expect "home of egress-audit" "$(getent passwd egress-audit | cut -d: -f6)" "$state"
[ "$(id -u egress-audit)" -lt 1000 ] || fail "egress-audit is not a system user"
id -nG egress-audit | tr ' ' '\n' | grep -qx proxy || fail "egress-audit is not in group proxy"
expect "$state" "$(perms "$state")" "egress-audit:egress-audit 750"
expect /etc/egress-audit/env "$(perms /etc/egress-audit/env)" "root:root 600"
expect /etc/egress-audit/config.toml "$(perms /etc/egress-audit/config.toml)" "root:root 644"
expect /usr/lib/systemd/system/egress-audit.service \
    "$(perms /usr/lib/systemd/system/egress-audit.service)" "root:root 644"
if ls /etc/systemd/system/multi-user.target.wants/egress-audit.service >/dev/null 2>&1; then
    fail "the service was enabled on install; it must wait for its config"
fi
/usr/bin/egress-audit --version | grep -q '^egress-audit ' || fail "/usr/bin/egress-audit --version"

# The unit's user, working directory, umask and shipped config, reading a log that
# only Squid's group may read, as /var/log/squid is on Debian.
step "importing a log readable only by group proxy, as egress-audit"
install -d -o root -g proxy -m 0750 "$work/squid"
install -o root -g proxy -m 0640 fixtures/sample-access.log "$work/squid/access.log.1"
chmod 0755 "$work"
# The service reads DATABASE_URL from /etc/egress-audit/env, which is empty
# here, so the one the test command exports must not leak in: the shipped
# config's embedded store is what is checked.
as_service() {
    (cd "$state" && umask 077 && env -u DATABASE_URL runuser -u egress-audit -- \
        /usr/bin/egress-audit --config /etc/egress-audit/config.toml "$@")
}
as_service import --format squid "$work/squid/access.log.1" >"$work/import.log" 2>&1 \
    || { cat "$work/import.log" >&2; fail "import as egress-audit failed"; }
lines=$(grep -c '' fixtures/sample-access.log)
grep -q "$lines rows written" "$work/import.log" \
    || { cat "$work/import.log" >&2; fail "import did not write all $lines rows"; }
calls=$(as_service query top-bots --since 2000-01-01 --format csv | tail -n +2 \
    | awk -F, '{ sum += $2 } END { print sum }')
expect "calls counted by query top-bots" "$calls" "$lines"
expect "$state/egress-audit.db" "$(perms "$state/egress-audit.db")" \
    "egress-audit:egress-audit 600"

# Purge keeps an embedded store, which is the audit trail, and its owner.
step "dpkg --purge with an SQLite store in $state"
dpkg --purge egress-audit >"$work/dpkg.log" 2>&1 \
    || { cat "$work/dpkg.log" >&2; fail "dpkg --purge failed"; }
[ -f "$state/egress-audit.db" ] || fail "purge removed the SQLite store in $state"
getent passwd egress-audit >/dev/null || fail "purge removed the user owning $state"
[ ! -e /etc/egress-audit/env ] || fail "purge left /etc/egress-audit/env"
[ ! -e /usr/bin/egress-audit ] || fail "purge left /usr/bin/egress-audit"

# With nothing left in the state directory, purge removes it and the user.
step "install again, then dpkg --purge with an empty state directory"
rm -f "$state"/egress-audit.db*
dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "second dpkg -i"; }
expect "$state" "$(perms "$state")" "egress-audit:egress-audit 750"
dpkg --purge egress-audit >"$work/dpkg.log" 2>&1 \
    || { cat "$work/dpkg.log" >&2; fail "second dpkg --purge failed"; }
[ ! -e "$state" ] || fail "purge left an empty $state"
! getent passwd egress-audit >/dev/null || fail "purge left user egress-audit"
! getent group egress-audit >/dev/null || fail "purge left group egress-audit"
[ ! -e /etc/egress-audit ] || fail "purge left /etc/egress-audit"

step "$(basename "$deb") installs, runs as its user and purges cleanly"
