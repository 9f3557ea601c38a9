#!/usr/bin/env bash
# Builds and starts the Event Hubs emulator (cmd/eventhubs-emulator) in the
# background on 127.0.0.1 with scripts/eventhubs/Config.json, and waits
# until /health answers. Prints the line to export on stdout (everything
# else goes to stderr): NETHERITE_EVENTHUBS, the connection string, and
# NETHERITE_EVENTHUBS_ADMIN, the base URL of the admin API, so that this works:
#
#	eval "$(scripts/eventhubs/start.sh)"
#
# Options:
#   --config FILE    Config.json in the format of Microsoft's emulator
#                    (default scripts/eventhubs/Config.json)
#   --data DIR       keep events on disk in DIR (default: in memory, lost on stop)
#   --strict-auth    verify SAS tokens against the key
#   --timeout SEC    how long to wait for /health (default 30)
# Environment: EVENTHUBS_PORT (default 5672), EVENTHUBS_HEALTH_PORT (default
# 5300), EVENTHUBS_DIR, EVENTHUBS_RUN_DIR (see common.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

config=$EVENTHUBS_REPO_ROOT/scripts/eventhubs/Config.json
data=""
strict=""
timeout=30
while [ $# -gt 0 ]; do
	case "$1" in
	--config) config=${2:?--config needs a file}; shift 2 ;;
	--config=*) config=${1#--config=}; shift ;;
	--data) data=${2:?--data needs a directory}; shift 2 ;;
	--data=*) data=${1#--data=}; shift ;;
	--strict-auth) strict=-strict-auth; shift ;;
	--timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
	-h | --help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
	*) echo "eventhubs start: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done

if eventhubs_running; then
	echo "eventhubs start: already running (pid $(cat "$EVENTHUBS_PID_FILE"), port $EVENTHUBS_PORT)" >&2
	echo "export NETHERITE_EVENTHUBS='$(eventhubs_connection_string)'"
echo "export NETHERITE_EVENTHUBS_ADMIN='http://127.0.0.1:$EVENTHUBS_HEALTH_PORT'"
	echo "export NETHERITE_EVENTHUBS_ADMIN='http://127.0.0.1:$EVENTHUBS_HEALTH_PORT'"
	exit 0
fi
if eventhubs_healthy; then
	echo "eventhubs start: something else already answers on 127.0.0.1:$EVENTHUBS_HEALTH_PORT; stop it or choose another EVENTHUBS_HEALTH_PORT" >&2
	exit 1
fi

mkdir -p "$EVENTHUBS_RUN_DIR" "$(dirname "$EVENTHUBS_BIN")"
(cd "$EVENTHUBS_REPO_ROOT" && go build -o "$EVENTHUBS_BIN" ./cmd/eventhubs-emulator) >&2

args=(-config "$config" -addr "127.0.0.1:$EVENTHUBS_PORT" -health-addr "127.0.0.1:$EVENTHUBS_HEALTH_PORT" -v)
where="events in memory"
if [ -n "$data" ]; then
	mkdir -p "$data"
	data=$(cd "$data" && pwd)
	args+=(-data "$data")
	where="events in $data"
fi
if [ -n "$strict" ]; then
	args+=("$strict")
fi

: >"$EVENTHUBS_LOG_FILE"
# setsid: the emulator outlives this script and the shell's job control.
if command -v setsid >/dev/null; then
	setsid "$EVENTHUBS_BIN" "${args[@]}" >>"$EVENTHUBS_LOG_FILE" 2>&1 </dev/null &
else
	nohup "$EVENTHUBS_BIN" "${args[@]}" >>"$EVENTHUBS_LOG_FILE" 2>&1 </dev/null &
fi
pid=$!
echo "$pid" >"$EVENTHUBS_PID_FILE"

deadline=$((SECONDS + timeout))
until eventhubs_healthy; do
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "eventhubs start: the emulator (pid $pid) exited; last lines of $EVENTHUBS_LOG_FILE:" >&2
		tail -n 30 "$EVENTHUBS_LOG_FILE" >&2 || true
		rm -f "$EVENTHUBS_PID_FILE"
		exit 1
	fi
	if [ "$SECONDS" -ge "$deadline" ]; then
		echo "eventhubs start: /health on 127.0.0.1:$EVENTHUBS_HEALTH_PORT did not answer within ${timeout}s; stopping pid $pid; last lines of $EVENTHUBS_LOG_FILE:" >&2
		tail -n 30 "$EVENTHUBS_LOG_FILE" >&2 || true
		kill "$pid" 2>/dev/null || true
		rm -f "$EVENTHUBS_PID_FILE"
		exit 1
	fi
	sleep 0.2
done
echo "event hubs emulator on 127.0.0.1:$EVENTHUBS_PORT (admin http://127.0.0.1:$EVENTHUBS_HEALTH_PORT, $where), pid $pid, log $EVENTHUBS_LOG_FILE" >&2
echo "export NETHERITE_EVENTHUBS='$(eventhubs_connection_string)'"
echo "export NETHERITE_EVENTHUBS_ADMIN='http://127.0.0.1:$EVENTHUBS_HEALTH_PORT'"
