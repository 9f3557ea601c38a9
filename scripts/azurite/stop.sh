#!/usr/bin/env bash
# Stops the Azurite started by start.sh (the pid in its pid file; the same
# AZURITE_BLOB_PORT selects the same pid file).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [ ! -f "$AZURITE_PID_FILE" ]; then
	echo "azurite stop: not running (no pid file $AZURITE_PID_FILE)" >&2
	exit 0
fi
pid=$(cat "$AZURITE_PID_FILE")
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
	echo "azurite stop: pid ${pid:-?} from $AZURITE_PID_FILE is not running" >&2
	rm -f "$AZURITE_PID_FILE"
	exit 0
fi
kill "$pid"
for _ in $(seq 1 50); do
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.2
done
if kill -0 "$pid" 2>/dev/null; then
	echo "azurite stop: pid $pid did not exit within 10s; killing it" >&2
	kill -9 "$pid" 2>/dev/null || true
fi
rm -f "$AZURITE_PID_FILE"
echo "azurite stop: stopped pid $pid (port $AZURITE_BLOB_PORT)" >&2
