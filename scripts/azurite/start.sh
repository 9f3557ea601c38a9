#!/usr/bin/env bash
# Starts Azurite's blob, queue and table services in the background on
# 127.0.0.1 and waits until they answer. Prints the line to export on stdout (everything else
# goes to stderr), so that this works:
#
#	eval "$(scripts/azurite/start.sh)"
#
# Options:
#   --location DIR   keep the data in DIR (default: in memory, lost on stop)
#   --access-log     write Azurite's access log (one line per request) to the log file
#   --timeout SEC    how long to wait for the port to answer (default 30)
#   --gc / --no-gc   run the blob service's extent garbage collector or not
#                    (default: off in memory, on with --location; see launch.js:
#                    a sweep over a test run's data blocks Azurite for minutes)
# Environment: AZURITE_BLOB_PORT (default 10000), AZURITE_QUEUE_PORT and
# AZURITE_TABLE_PORT (default the blob port + 1 and + 2), AZURITE_DIR,
# AZURITE_RUN_DIR (see common.sh). Run install.sh first.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

location=""
silent=--silent
timeout=30
gc=""
while [ $# -gt 0 ]; do
	case "$1" in
	--location) location=${2:?--location needs a directory}; shift 2 ;;
	--location=*) location=${1#--location=}; shift ;;
	--access-log) silent=""; shift ;;
	--timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
	--gc) gc=on; shift ;;
	--no-gc) gc=off; shift ;;
	-h | --help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
	*) echo "azurite start: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done

bin=$AZURITE_DIR/node_modules/.bin/azurite
if [ ! -x "$bin" ]; then
	echo "azurite start: $bin not found; run scripts/azurite/install.sh first" >&2
	exit 1
fi

if azurite_running; then
	echo "azurite start: already running (pid $(cat "$AZURITE_PID_FILE"), port $AZURITE_BLOB_PORT)" >&2
	echo "export NETHERITE_AZURITE='$(azurite_connection_string)'"
	exit 0
fi
for port in "$AZURITE_BLOB_PORT" "$AZURITE_QUEUE_PORT" "$AZURITE_TABLE_PORT"; do
	if azurite_port_answers "$port"; then
		echo "azurite start: something else already answers on 127.0.0.1:$port; stop it or choose other AZURITE_BLOB_PORT/AZURITE_QUEUE_PORT/AZURITE_TABLE_PORT" >&2
		exit 1
	fi
done

mkdir -p "$AZURITE_RUN_DIR"
args=(--blobHost 127.0.0.1 --blobPort "$AZURITE_BLOB_PORT" --queueHost 127.0.0.1 --queuePort "$AZURITE_QUEUE_PORT"
	--tableHost 127.0.0.1 --tablePort "$AZURITE_TABLE_PORT" --skipApiVersionCheck --loose --disableTelemetry)
if [ -n "$silent" ]; then
	args+=("$silent")
fi
if [ -n "$location" ]; then
	mkdir -p "$location"
	location=$(cd "$location" && pwd)
	args+=(--location "$location")
	where="data in $location"
	gc=${gc:-on}
else
	args+=(--inMemoryPersistence)
	where="data in memory"
	gc=${gc:-off}
fi
cmd=("$bin")
if [ "$gc" = off ]; then
	cmd=(node "$(dirname "${BASH_SOURCE[0]}")/launch.js" "$AZURITE_DIR/node_modules/azurite")
	where="$where, blob GC off"
fi

: >"$AZURITE_LOG_FILE"
# setsid: Azurite outlives this script and the shell's job control.
if command -v setsid >/dev/null; then
	setsid "${cmd[@]}" "${args[@]}" >>"$AZURITE_LOG_FILE" 2>&1 </dev/null &
else
	nohup "${cmd[@]}" "${args[@]}" >>"$AZURITE_LOG_FILE" 2>&1 </dev/null &
fi
pid=$!
echo "$pid" >"$AZURITE_PID_FILE"

deadline=$((SECONDS + timeout))
until azurite_all_answer; do
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "azurite start: azurite (pid $pid) exited; last lines of $AZURITE_LOG_FILE:" >&2
		tail -n 30 "$AZURITE_LOG_FILE" >&2 || true
		rm -f "$AZURITE_PID_FILE"
		exit 1
	fi
	if [ "$SECONDS" -ge "$deadline" ]; then
		echo "azurite start: 127.0.0.1:$AZURITE_BLOB_PORT/$AZURITE_QUEUE_PORT/$AZURITE_TABLE_PORT did not all answer within ${timeout}s; stopping pid $pid; last lines of $AZURITE_LOG_FILE:" >&2
		tail -n 30 "$AZURITE_LOG_FILE" >&2 || true
		kill "$pid" 2>/dev/null || true
		rm -f "$AZURITE_PID_FILE"
		exit 1
	fi
	sleep 0.2
done
echo "azurite $AZURITE_VERSION on http://127.0.0.1: blob $AZURITE_BLOB_PORT, queue $AZURITE_QUEUE_PORT, table $AZURITE_TABLE_PORT ($where), pid $pid, log $AZURITE_LOG_FILE" >&2
echo "export NETHERITE_AZURITE='$(azurite_connection_string)'"
