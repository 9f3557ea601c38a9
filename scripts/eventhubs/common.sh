# Shared settings of the Event Hubs emulator scripts; sourced, not run.
# Overridable through the environment:
#   EVENTHUBS_PORT         AMQP port (default 5672)
#   EVENTHUBS_HEALTH_PORT  /health and admin API port (default 5300)
#   EVENTHUBS_DIR          build and run folder (default <repo>/.eventhubs)
#   EVENTHUBS_RUN_DIR      pid and log files (default $EVENTHUBS_DIR/run)

EVENTHUBS_REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
EVENTHUBS_DIR=${EVENTHUBS_DIR:-$EVENTHUBS_REPO_ROOT/.eventhubs}
EVENTHUBS_PORT=${EVENTHUBS_PORT:-5672}
EVENTHUBS_HEALTH_PORT=${EVENTHUBS_HEALTH_PORT:-5300}
EVENTHUBS_RUN_DIR=${EVENTHUBS_RUN_DIR:-$EVENTHUBS_DIR/run}
EVENTHUBS_BIN=$EVENTHUBS_DIR/bin/eventhubs-emulator
EVENTHUBS_PID_FILE=$EVENTHUBS_RUN_DIR/eventhubs-emulator-$EVENTHUBS_PORT.pid
EVENTHUBS_LOG_FILE=$EVENTHUBS_RUN_DIR/eventhubs-emulator-$EVENTHUBS_PORT.log

# The key of Microsoft's emulator connection string (public, not a secret).
EVENTHUBS_KEY_NAME=RootManageSharedAccessKey
EVENTHUBS_KEY=SAS_KEY_VALUE

eventhubs_connection_string() {
	echo "Endpoint=sb://127.0.0.1:$EVENTHUBS_PORT;SharedAccessKeyName=$EVENTHUBS_KEY_NAME;SharedAccessKey=$EVENTHUBS_KEY;UseDevelopmentEmulator=true"
}

# eventhubs_running: the pid in the pid file is alive.
eventhubs_running() {
	[ -f "$EVENTHUBS_PID_FILE" ] || return 1
	local pid
	pid=$(cat "$EVENTHUBS_PID_FILE" 2>/dev/null) || return 1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# eventhubs_healthy: /health answers.
eventhubs_healthy() {
	curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$EVENTHUBS_HEALTH_PORT/health" 2>/dev/null
}
