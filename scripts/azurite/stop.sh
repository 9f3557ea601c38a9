#!/usr/bin/env bash
# Stops the Azurite started by start.sh (the pid in its pid file; the same
# AZURITE_BLOB_PORT selects the same pid file).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../pidfile.sh"
stop_pid_file azurite "$AZURITE_PID_FILE" "$AZURITE_BLOB_PORT"
