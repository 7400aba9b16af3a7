# A throwaway PostgreSQL server for the tests and the bench: sourced by
# .ci/run (and by a developer: `source .ci/postgres.sh && pg_start`).
#
# pg_start installs PostgreSQL (Debian's package) if it is missing, makes a
# cluster in a new temporary directory, owned by an unprivileged user when
# run as root (the server refuses to run as root), starts it on a free port
# of 127.0.0.1 (and a unix socket in that directory), with a random password
# for the user `dataflare`, and exports DATAFLARE_PG_URL. pg_stop stops it
# and removes the directory; call it from a trap.

pg_bindir() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

pg_start() {
    local bindir
    bindir=$(pg_bindir)
    if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
        echo "== installing PostgreSQL (Debian package)"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        bindir=$(pg_bindir)
    fi
    [ -x "$bindir/initdb" ] || { echo "PostgreSQL's initdb not found"; return 1; }
    PG_BINDIR=$bindir
    PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/dataflare-pg.XXXXXX")
    local as=()
    if [ "$(id -u)" = 0 ]; then
        local user=postgres
        if ! id "$user" >/dev/null 2>&1; then
            user=dataflare-ci
            id "$user" >/dev/null 2>&1 ||
                useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$user"
        fi
        chown "$user" "$PG_DIR"
        as=(runuser -u "$user" --)
    fi
    PG_AS=("${as[@]}")
    local password port
    password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    printf '%s\n' "$password" >"$PG_DIR/pwfile"
    chmod 600 "$PG_DIR/pwfile"
    [ ${#as[@]} -eq 0 ] || chown "${as[2]}" "$PG_DIR/pwfile"
    "${as[@]}" "$bindir/initdb" -D "$PG_DIR/data" -U dataflare --pwfile="$PG_DIR/pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale >"$PG_DIR/initdb.log" 2>&1 ||
        { cat "$PG_DIR/initdb.log"; return 1; }
    rm -f "$PG_DIR/pwfile"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # Durability off: a throwaway cluster (it changes the server's cost of a
    # commit, the same for DataFlare and psql in the bench).
    "${as[@]}" "$bindir/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 start \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        >/dev/null || { cat "$PG_DIR/server.log"; return 1; }
    PG_PORT=$port
    export DATAFLARE_PG_URL="postgres://dataflare:$password@127.0.0.1:$port/postgres"
    echo "== PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($PG_DIR)"
}

pg_stop() {
    if [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR/data" ]; then
        "${PG_AS[@]}" "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 ||
            "${PG_AS[@]}" "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    [ -z "${PG_DIR:-}" ] || rm -rf "$PG_DIR"
    PG_DIR=
}
