#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server on 127.0.0.1 for the test suite and prints its SQLAlchemy URL.
# Usage: eval "$(scripts/pg-tmp.sh start)"   -> exports DTN_TEST_PG_URL and DTN_TEST_PG_DIR
#        scripts/pg-tmp.sh stop DIR
set -euo pipefail
cmd="${1:-start}"
bindir=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && bindir="$d"; done
if [ -z "$bindir" ]; then
    command -v initdb >/dev/null 2>&1 && bindir="$(dirname "$(command -v initdb)")"
fi
as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "$cmd" in
start)
    if [ -z "$bindir" ]; then echo "echo 'pg-tmp: no PostgreSQL server installed' >&2"; exit 0; fi
    dir="$(mktemp -d /tmp/dtn-pg.XXXXXX)"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    port="${DTN_TEST_PG_PORT:-$(( 20000 + RANDOM % 20000 ))}"
    as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust --no-sync >"$dir/initdb.log" 2>&1
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=on" start >/dev/null
    echo "export DTN_TEST_PG_URL='postgresql+psycopg://postgres@127.0.0.1:$port/postgres'"
    echo "export DTN_TEST_PG_DIR='$dir'"
    ;;
stop)
    dir="$2"
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
esac
