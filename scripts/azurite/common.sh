# Shared settings of the Azurite scripts; sourced, not run.
# Overridable through the environment:
#   AZURITE_DIR        install folder (default <repo>/.azurite)
#   AZURITE_BLOB_PORT  blob service port (default 10000)
#   AZURITE_QUEUE_PORT queue service port (default AZURITE_BLOB_PORT+1)
#   AZURITE_TABLE_PORT table service port (default AZURITE_BLOB_PORT+2)
#   AZURITE_RUN_DIR    pid and log files (default $AZURITE_DIR/run)

AZURITE_VERSION=3.37.0
AZURITE_REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
AZURITE_DIR=${AZURITE_DIR:-$AZURITE_REPO_ROOT/.azurite}
AZURITE_BLOB_PORT=${AZURITE_BLOB_PORT:-10000}
# Next to the blob port by default, so that a script which moves only the
# blob port (.ci/run) moves all three away from a developer's Azurite.
AZURITE_QUEUE_PORT=${AZURITE_QUEUE_PORT:-$((AZURITE_BLOB_PORT + 1))}
AZURITE_TABLE_PORT=${AZURITE_TABLE_PORT:-$((AZURITE_BLOB_PORT + 2))}
AZURITE_RUN_DIR=${AZURITE_RUN_DIR:-$AZURITE_DIR/run}
AZURITE_PID_FILE=$AZURITE_RUN_DIR/azurite-blob-$AZURITE_BLOB_PORT.pid
AZURITE_LOG_FILE=$AZURITE_RUN_DIR/azurite-blob-$AZURITE_BLOB_PORT.log

# The well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT=devstoreaccount1
AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

azurite_connection_string() {
	echo "DefaultEndpointsProtocol=http;AccountName=$AZURITE_ACCOUNT;AccountKey=$AZURITE_KEY;BlobEndpoint=http://127.0.0.1:$AZURITE_BLOB_PORT/$AZURITE_ACCOUNT;QueueEndpoint=http://127.0.0.1:$AZURITE_QUEUE_PORT/$AZURITE_ACCOUNT;TableEndpoint=http://127.0.0.1:$AZURITE_TABLE_PORT/$AZURITE_ACCOUNT;"
}

azurite_installed_version() {
	local pkg=$AZURITE_DIR/node_modules/azurite/package.json
	[ -f "$pkg" ] || return 0
	node -e 'process.stdout.write(require(process.argv[1]).version)' "$pkg" 2>/dev/null || true
}

# azurite_running: the pid in the pid file is alive.
azurite_running() {
	[ -f "$AZURITE_PID_FILE" ] || return 1
	local pid
	pid=$(cat "$AZURITE_PID_FILE" 2>/dev/null) || return 1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# azurite_answers: something answers HTTP on the blob port.
azurite_answers() {
	curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$AZURITE_BLOB_PORT/$AZURITE_ACCOUNT?comp=list" 2>/dev/null
}

# azurite_port_answers PORT: something answers HTTP on PORT.
azurite_port_answers() {
	curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/$AZURITE_ACCOUNT" 2>/dev/null
}

# azurite_all_answer: the blob, queue and table services all answer.
azurite_all_answer() {
	azurite_answers && azurite_port_answers "$AZURITE_QUEUE_PORT" && azurite_port_answers "$AZURITE_TABLE_PORT"
}
