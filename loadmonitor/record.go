// Package loadmonitor decides where partitions run and how many hosts a
// task hub needs. It is a singleton: the host that holds its lease runs
// it. It reads the load reports hosts send through the transport's
// load-monitor queue, keeps the set of live hosts, spreads the partitions
// over them (counts first, then load), and recommends a host count
// (doc/scaling.md). Its decisions are a versioned Record, kept in the task
// hub's storage and sent to the hosts.
//
// Monitor is a pure state machine (reports and clock readings in, records
// out); Run does the I/O around it.
package loadmonitor

import (
	"time"

	"github.com/netherite-go/netherite/transport"
)

// Record is the load monitor's state as it publishes it: the placement,
// the hosts, the newest load of every partition and the recommendation.
type Record struct {
	// Version increases by one whenever Owners change.
	Version uint64
	// Monitor is the id of the host running the load monitor; Updated is
	// when it wrote this record.
	Monitor string
	Updated time.Time
	// Owners[p] is the id of the host that should run partition p ("" if
	// none: no live host).
	Owners []string
	// Hosts are the hosts the monitor knows, live or not, sorted by id.
	Hosts []HostInfo
	// Loads[p] is the newest report of partition p (Partition = p).
	Loads []transport.PartitionLoad
	// Recommendation is the number of hosts the task hub needs now.
	Recommendation Recommendation
	// Position is where the monitor continues reading its queue.
	Position uint64
}

// HostInfo is what the monitor knows of one host.
type HostInfo struct {
	ID       string
	ClientID string
	// LastReport is when the host's newest report arrived (the monitor's
	// clock).
	LastReport time.Time
	// Live: it reported within the host timeout and is not stopping.
	Live     bool
	Stopping bool
	// Running lists the partitions the host reported running.
	Running []int
}

// Recommendation is a scale decision: Hosts wanted, and why.
type Recommendation struct {
	Hosts  int
	Reason string
}
