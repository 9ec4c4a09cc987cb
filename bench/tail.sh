#!/bin/sh
# Reads a generated 1 GiB Squid-like log through the tailer and compares it
# with `wc -l` on the same file. The file is made in /tmp and never committed.
# Usage: bench/tail.sh [FILE]   (run from the crate root)
set -eu
file=${1:-/tmp/egress-audit-bench-1g.log}
if [ ! -f "$file" ]; then
    python3 - "$file" <<'PY'
import sys
line = ("1709647387.{ms:03d}    157 192.0.2.{host} TCP_MISS/200 5123 GET "
        "http://example.com/api/v1/items/{n}?page=2 - HIER_DIRECT/93.184.216.34 "
        "application/json\n")
block = "".join(line.format(ms=n % 1000, host=n % 250, n=n) for n in range(8000)).encode()
with open(sys.argv[1], "wb") as out:
    written = 0
    while written < 1 << 30:
        out.write(block)
        written += len(block)
PY
fi
cargo build --release --example tail_to_end
cat "$file" > /dev/null  # warm the page cache so both readers start equal
echo "wc -l:"
/usr/bin/time -f "  seconds=%e peak_rss_kib=%M" wc -l "$file"
echo "tailer:"
/usr/bin/time -f "  seconds=%e peak_rss_kib=%M" target/release/examples/tail_to_end "$file"
