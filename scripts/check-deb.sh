#!/usr/bin/env bash
# Checks a built egress-audit Debian package: the files it installs, its
# conffile and its maintainer scripts. Usage: scripts/check-deb.sh FILE.deb
# Exits non-zero, naming what is missing, when the package is incomplete.
set -euo pipefail

deb=${1:?usage: scripts/check-deb.sh FILE.deb}
failures=0
missing() { printf 'check-deb: %s: missing %s\n' "$deb" "$*" >&2; failures=$((failures + 1)); }

contents=$(dpkg-deb -c "$deb")
for path in \
    ./usr/bin/egress-audit \
    ./usr/lib/systemd/system/egress-audit.service \
    ./etc/egress-audit/config.toml \
    ./usr/share/doc/egress-audit/README.md \
    ./usr/share/doc/egress-audit/squid/egress-audit.conf \
    ./usr/share/doc/egress-audit/logrotate/egress-audit-squid; do
    grep -q " $path\$" <<<"$contents" || missing "file $path"
done
grep -q -- '-rwxr-xr-x .* ./usr/bin/egress-audit$' <<<"$contents" || missing "mode 0755 on the binary"

info=$(dpkg-deb -I "$deb")
for script in postinst postrm prerm; do
    grep -qE "^ +[0-9]+ bytes, +[0-9]+ lines +\* +$script " <<<"$info" \
        || missing "maintainer script $script"
done
dpkg-deb -I "$deb" conffiles | grep -qx /etc/egress-audit/config.toml \
    || missing "conffile /etc/egress-audit/config.toml"
dpkg-deb -I "$deb" postinst | grep -q 'adduser --system --group --no-create-home' \
    || missing "the system user's creation in postinst"
dpkg-deb -I "$deb" postinst | grep -q 'adduser --quiet egress-audit proxy' \
    || missing "membership of group proxy in postinst"
dpkg-deb -I "$deb" postinst | grep -q 'deb-systemd-helper' \
    || missing "systemd integration in postinst"
dpkg-deb -I "$deb" postrm | grep -q 'purge)' || missing "purge cleanup in postrm"
for script in postinst postrm prerm; do
    dpkg-deb -I "$deb" "$script" | sh -n || missing "valid shell syntax in $script"
done

if [ "$failures" -gt 0 ]; then
    exit 1
fi
printf 'check-deb: %s holds the expected files, conffile and maintainer scripts\n' "$deb" >&2
