package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/netherite-go/netherite"
)

// transportFlags are the flags that choose the transport, shared by serve,
// bench, demo and taskhub.
type transportFlags struct {
	transport *string
	prefix    *string
	admin     *string
}

func addTransportFlags(fs *flag.FlagSet) *transportFlags {
	return &transportFlags{
		transport: fs.String("transport", "", `how partitions and clients talk: "memory" (in-process queues, the default) or an Event Hubs `+
			`connection string ("Endpoint=sb://...", Azure or the emulator), which lets host processes share the task hub`),
		prefix: fs.String("eventhubs-prefix", "", "prefix of the Event Hubs hub names, so that task hubs can share a namespace"),
		admin: fs.String("eventhubs-admin", "", "the Event Hubs emulator's admin API, where hubs are created (default $"+
			eventHubsAdminEnv+"; leave unset on Azure)"),
	}
}

// eventHubsAdminEnv is where scripts/eventhubs/start.sh puts the emulator's
// admin API.
const eventHubsAdminEnv = "NETHERITE_EVENTHUBS_ADMIN"

func (f *transportFlags) apply(o *netherite.Options) {
	o.Transport, o.EventHubsPrefix = *f.transport, *f.prefix
	if netherite.IsEventHubsConnection(o.Transport) {
		o.EventHubsAdminURL = *f.admin
		if o.EventHubsAdminURL == "" && strings.Contains(strings.ToLower(o.Transport), "usedevelopmentemulator=true") {
			o.EventHubsAdminURL = os.Getenv(eventHubsAdminEnv)
		}
	}
}

// parsePartitionList parses -partitions-owned: "" or "all" (nil: every
// partition), "none" (an empty list: a client only), or comma-separated
// numbers and ranges ("0-5", "0,2,6-11").
func parsePartitionList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "all":
		return nil, nil
	case "none":
		return []int{}, nil
	}
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(strings.TrimSpace(lo))
		if err != nil || a < 0 {
			return nil, fmt.Errorf("%q: want partition numbers or ranges such as 0-5, or all or none", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil || b < a {
				return nil, fmt.Errorf("%q: want a range low-high with low <= high", part)
			}
		}
		for p := a; p <= b; p++ {
			if seen[p] {
				return nil, fmt.Errorf("partition %d is listed twice", p)
			}
			seen[p] = true
		}
	}
	out := make([]int, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Ints(out)
	return out, nil
}
