#!/bin/sh
# Like the official image's entrypoint where clients notice: options alone run redis-server,
# the server runs as the redis user, and protected mode is off so published ports answer.
set -e

if [ "${1#-}" != "$1" ]; then
	set -- redis-server "$@"
fi

if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
	chown -R redis:redis .
	exec su -m -s /bin/sh redis -c 'exec "$0" "$@"' "$0" "$@"
fi

if [ "$1" = redis-server ]; then
	shift
	# A config file, if any, must stay the first argument; later options override earlier ones.
	if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
		config=$1
		shift
		set -- redis-server "$config" --protected-mode no "$@"
	else
		set -- redis-server --protected-mode no "$@"
	fi
fi

exec "$@"
