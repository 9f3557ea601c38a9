#!/usr/bin/env bash
# Stops the Event Hubs emulator started by start.sh (the pid in its pid
# file; the same EVENTHUBS_PORT selects the same pid file).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [ ! -f "$EVENTHUBS_PID_FILE" ]; then
	echo "eventhubs stop: not running (no pid file $EVENTHUBS_PID_FILE)" >&2
	exit 0
fi
pid=$(cat "$EVENTHUBS_PID_FILE")
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
	echo "eventhubs stop: pid ${pid:-?} from $EVENTHUBS_PID_FILE is not running" >&2
	rm -f "$EVENTHUBS_PID_FILE"
	exit 0
fi
kill "$pid"
for _ in $(seq 1 50); do
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.2
done
if kill -0 "$pid" 2>/dev/null; then
	echo "eventhubs stop: pid $pid did not exit within 10s; killing it" >&2
	kill -9 "$pid" 2>/dev/null || true
fi
rm -f "$EVENTHUBS_PID_FILE"
echo "eventhubs stop: stopped pid $pid (port $EVENTHUBS_PORT)" >&2
