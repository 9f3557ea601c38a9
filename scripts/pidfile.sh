# Stopping a background service by its pid file; sourced by the service
# scripts (scripts/azurite, scripts/eventhubs), not run.

# stop_pid_file NAME PID_FILE PORT: stop the process in PID_FILE (TERM,
# then KILL after 10 s) and remove the file. Not running is not an error.
stop_pid_file() {
	local name=$1 file=$2 port=$3 pid
	if [ ! -f "$file" ]; then
		echo "$name stop: not running (no pid file $file)" >&2
		return 0
	fi
	pid=$(cat "$file")
	if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "$name stop: pid ${pid:-?} from $file is not running" >&2
		rm -f "$file"
		return 0
	fi
	kill "$pid"
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "$name stop: pid $pid did not exit within 10s; killing it" >&2
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$file"
	echo "$name stop: stopped pid $pid (port $port)" >&2
}
