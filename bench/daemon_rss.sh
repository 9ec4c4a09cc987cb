#!/usr/bin/env bash
# Peak RSS of the whole daemon (`egress-audit run`) replaying a 1 GiB native
# log into PostgreSQL from byte 0, beside `wc -l` of the same file.
#
#   bench/daemon_rss.sh            # DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres
set -euo pipefail
cd "$(dirname "$0")/.."

admin=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db=egress_bench_daemon_rss
url=${admin%/*}/$db
cargo build --release --quiet --bin egress-audit
bin=$PWD/target/release/egress-audit

work=$(mktemp -d /tmp/egress-rss.XXXXXX)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
python3 - "$work/access.log" <<'PY'
import sys
target = 1 << 30
with open(sys.argv[1], "w") as out:
    n, size = 0, 0
    while size < target:
        line = ("%d.%03d %6d 10.0.%d.%d TCP_MISS/%03d %d GET https://host-%d.example/v1/items/%d bot-%d "
                "HIER_DIRECT/203.0.113.%d application/json\n") % (
            1772100000 + n // 100, n % 1000, (n * 37) % 3000, (n // 250) % 250, n % 250,
            (200, 200, 404, 200, 503)[n % 5], (n * 131) % 200000, n % 5000, n % 100000, n % 50, n % 250)
        out.write(line)
        size += len(line)
        n += 1
PY
lines=$(wc -l < "$work/access.log")
start=$(date +%s.%N); wc -l "$work/access.log" >/dev/null; end=$(date +%s.%N)
wc_took=$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')

psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
cat > "$work/config.toml" <<TOML
state_dir = "$work/state"
[[source]]
path = "$work/access.log"
name = "bench"
start_at = "beginning"
TOML

started=$(date +%s.%N)
DATABASE_URL=$url "$bin" --config "$work/config.toml" run 2>"$work/daemon.log" &
pid=$!
peak=0
while :; do
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    [ "${hwm:-0}" -gt "$peak" ] && peak=$hwm
    rows=$(psql -qtA "$url" -c "SELECT count(*) FROM tq_egress_audit" 2>/dev/null || echo 0)
    [ "$rows" -ge "$lines" ] && break
    sleep 0.5
done
ended=$(date +%s.%N)
kill -TERM "$pid"; wait "$pid"
took=$(awk -v a="$started" -v b="$ended" 'BEGIN {print b - a}')

printf '\nfile: %s lines, %s bytes\n' "$lines" "$(stat -c %s "$work/access.log")"
printf '| what | seconds | peak RSS |\n|---|---|---|\n'
printf '| reference: `wc -l` | %.2f | |\n' "$wc_took"
printf '| `egress-audit run` from byte 0 into PostgreSQL, all %s rows committed | %.1f | %.1f MiB |\n' \
    "$lines" "$took" "$(awk -v k="$peak" 'BEGIN {print k / 1024}')"
psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
