# shellcheck shell=bash
# A throwaway PostgreSQL server for tests and benchmarks: installed from Debian's packages when
# missing, initialised in a temp dir, owned by an unprivileged user, listening on a free loopback
# port, and removed again by `postgres_stop` (the callers register it with `trap`).
#
#   source scripts/lib/postgres.sh
#   postgres_start            # exports RUNTOOLS_TEST_POSTGRES_URL
#   trap postgres_stop EXIT

postgres_bin_dir() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root (or sudo) to run: $*" >&2; return 1
    fi
}

postgres_install() {
    if [ -n "$(postgres_bin_dir)" ]; then return 0; fi
    echo "==> installing PostgreSQL from Debian's packages"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
}

# Runs a command as the unprivileged user that owns the cluster (PostgreSQL refuses to run as root).
postgres_as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

postgres_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

postgres_start() {
    postgres_install
    local bin
    bin=$(postgres_bin_dir)
    POSTGRES_DIR=$(mktemp -d /tmp/runtools-pg.XXXXXX)
    if [ "$(id -u)" = 0 ]; then chown postgres: "$POSTGRES_DIR"; fi
    local port
    port=$(postgres_free_port)
    postgres_as_owner "$bin/initdb" -D "$POSTGRES_DIR/data" -U runtools -A trust --no-sync -E UTF8 >/dev/null
    postgres_as_owner "$bin/pg_ctl" -D "$POSTGRES_DIR/data" -l "$POSTGRES_DIR/log" -w start -o \
        "-p $port -k $POSTGRES_DIR -c listen_addresses=127.0.0.1 -c max_connections=500 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >/dev/null
    export POSTGRES_BIN="$bin"
    export RUNTOOLS_TEST_POSTGRES_URL="postgres://runtools@127.0.0.1:$port/postgres"
    echo "==> PostgreSQL $("$bin/postgres" --version | awk '{print $3}') running at $RUNTOOLS_TEST_POSTGRES_URL"
}

postgres_stop() {
    if [ -n "${POSTGRES_DIR:-}" ] && [ -d "$POSTGRES_DIR" ]; then
        postgres_as_owner "$POSTGRES_BIN/pg_ctl" -D "$POSTGRES_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
        rm -rf "$POSTGRES_DIR"
    fi
}
