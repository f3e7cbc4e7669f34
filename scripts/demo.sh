#!/usr/bin/env bash
# Sets up .venv and runs the demo: three dtnd nodes in a line move a file (TCPCLv4, then UDP), dtnping goes
# across them, and the bundle tools build, inspect, fragment and reassemble a bundle.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh
.venv/bin/python scripts/demo_line.py
dtn=".venv/bin/dtn"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "== dtn bundle build: ipn:1.1 -> ipn:2.1, 'hello, Mars', CRC-32C, 1 h lifetime, hop limit 16"
"$dtn" bundle build --src ipn:1.1 --dst ipn:2.1 --payload "hello, Mars" --crc 32c \
    --lifetime-ms 3600000 --hop-limit 16 --out "$work/hello.bundle"
echo "   $(wc -c <"$work/hello.bundle") bytes: $(od -An -tx1 -v "$work/hello.bundle" | tr -d ' \n' | cut -c1-72)…"
echo "== dtn bundle inspect"
"$dtn" bundle inspect "$work/hello.bundle"
echo "== a 3000-byte file, fragmented to fit 1,000-byte bundles, then reassembled"
head -c 3000 /dev/urandom >"$work/payload.bin"
"$dtn" bundle build --src ipn:1.1 --dst ipn:2.1 --payload-file "$work/payload.bin" --out "$work/big.bundle"
mkdir -p "$work/frags"
"$dtn" bundle fragment --max-bytes 1000 "$work/big.bundle" --out-dir "$work/frags"
ls "$work/frags" | sed 's/^/   /'
"$dtn" bundle reassemble "$work"/frags/* --out "$work/whole.bundle"
if cmp -s "$work/big.bundle" "$work/whole.bundle"; then
    echo "   reassembled bundle is byte-identical to the original"
else
    echo "   reassembled bundle DIFFERS from the original" >&2
    exit 1
fi
