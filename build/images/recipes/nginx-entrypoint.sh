#!/bin/sh
# The official image prints this line before starting nginx; some clients wait for it.
set -e
if [ "$1" = nginx ]; then
	echo "$0: Configuration complete; ready for start up" >&2
fi
exec "$@"
