#!/bin/sh
# Where clients rely on it, behaves like the official postgres image's entrypoint:
# - POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_USER (default
#   postgres), POSTGRES_DB (default: the user), POSTGRES_INITDB_ARGS;
# - initdb on first start, then /docker-entrypoint-initdb.d/*.sh and *.sql against a server
#   listening on the unix socket only, so "database system is ready to accept connections" is
#   logged twice: once by that temporary server, once by the real one;
# - the server runs as the postgres user and listens on all addresses with password auth.
set -e

if [ "${1#-}" != "$1" ]; then
	set -- postgres "$@"
fi

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chown -R postgres:postgres "$PGDATA" /var/run/postgresql
	chmod 700 "$PGDATA"
	# "--": su would take a "-c" among the arguments (postgres -c fsync=off) as its own.
	exec su -m -s /bin/sh postgres -c 'exec "$0" "$@"' -- "$0" "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
	POSTGRES_USER=${POSTGRES_USER:-postgres}
	POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
	auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
	if [ -z "$POSTGRES_PASSWORD" ] && [ "$auth" != trust ]; then
		cat >&2 <<-'MESSAGE'
			Error: Database is uninitialized and superuser password is not specified.
			       You must specify POSTGRES_PASSWORD to a non-empty value for the
			       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".
		MESSAGE
		exit 1
	fi

	password_file=$(mktemp)
	printf '%s\n' "$POSTGRES_PASSWORD" >"$password_file"
	# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words, as upstream
	initdb --username="$POSTGRES_USER" --pwfile="$password_file" --auth-local=trust \
		--auth-host="$auth" --encoding=UTF8 --locale=C.UTF-8 $POSTGRES_INITDB_ARGS
	rm -f "$password_file"
	printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
	printf 'host all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"

	pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
	if [ "$POSTGRES_DB" != postgres ]; then
		psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
			-c "CREATE DATABASE \"$POSTGRES_DB\""
	fi
	for script in /docker-entrypoint-initdb.d/*; do
		case "$script" in
		*.sh) echo "$0: running $script" && . "$script" ;;
		*.sql) echo "$0: running $script" &&
			psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f "$script" ;;
		*) ;;
		esac
	done
	pg_ctl -D "$PGDATA" -m fast -w stop
	echo
	echo 'PostgreSQL init process complete; ready for start up.'
	echo
fi

exec "$@"
