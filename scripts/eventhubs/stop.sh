#!/usr/bin/env bash
# Stops the Event Hubs emulator started by start.sh (the pid in its pid
# file; the same EVENTHUBS_PORT selects the same pid file).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../pidfile.sh"
stop_pid_file eventhubs "$EVENTHUBS_PID_FILE" "$EVENTHUBS_PORT"
