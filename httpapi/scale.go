package httpapi

import (
	"context"
	"net/http"
	"sort"
	"time"

	"github.com/netherite-go/netherite/loadmonitor"
	"github.com/netherite-go/netherite/transport"
)

// ScalePath is where ScaleHandler is served (next to the Durable
// Functions API, as the Functions host serves its scale status).
const ScalePath = Prefix + "/scale"

// ScaleSource returns the load monitor's newest record of a task hub
// (netherite.Host.Scale, or netherite.TaskHubStatus for a process that
// runs no host): nil, or an error, if there is none yet.
type ScaleSource func(ctx context.Context) (*loadmonitor.Record, error)

// ScaleStatus is the JSON of GET /runtime/webhooks/durabletask/scale and
// of `netherite taskhub status -json`. RecommendedHosts is top level, so
// that KEDA's metrics-api scaler reads it with valueLocation
// "recommendedHosts".
type ScaleStatus struct {
	RecommendedHosts int                `json:"recommendedHosts"`
	Recommendation   ScaleDecision      `json:"recommendation"`
	PlacementVersion uint64             `json:"placementVersion"`
	Monitor          string             `json:"monitor"`
	Updated          string             `json:"updated,omitempty"`
	LiveHosts        int                `json:"liveHosts"`
	Hosts            []ScaleHost        `json:"hosts"`
	Partitions       []ScalePartition   `json:"partitions"`
	Totals           ScalePartitionLoad `json:"totals"`
}

// ScaleDecision is the recommendation: hosts wanted, and why.
type ScaleDecision struct {
	Hosts  int    `json:"hosts"`
	Reason string `json:"reason"`
}

// ScaleHost is one host the load monitor knows.
type ScaleHost struct {
	ID       string `json:"id"`
	Live     bool   `json:"live"`
	Stopping bool   `json:"stopping,omitempty"`
	// Partitions are the partitions the placement gives the host;
	// Running those it reported running.
	Partitions []int  `json:"partitions"`
	Running    []int  `json:"running"`
	LastReport string `json:"lastReport,omitempty"`
}

// ScalePartition is one partition: its owner and its newest load.
type ScalePartition struct {
	Partition int    `json:"partition"`
	Owner     string `json:"owner"`
	ScalePartitionLoad
}

// ScalePartitionLoad is a partition's load (transport.PartitionLoad).
type ScalePartitionLoad struct {
	WorkItems  int    `json:"workItems"`
	Activities int    `json:"activities"`
	Timers     int    `json:"timers"`
	NextTimer  string `json:"nextTimer,omitempty"`
	Outbox     int    `json:"outbox"`
	InputLag   int64  `json:"inputLag"`
	Events     int64  `json:"events"`
	CacheBytes int64  `json:"cacheBytes"`
	Instances  int64  `json:"instances"`
	Latency    string `json:"latency"`
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func scaleLoad(l transport.PartitionLoad) ScalePartitionLoad {
	return ScalePartitionLoad{WorkItems: l.WorkItems, Activities: l.Activities, Timers: l.Timers,
		NextTimer: formatTime(l.NextTimer), Outbox: l.Outbox, InputLag: l.InputLag, Events: l.Events,
		CacheBytes: l.CacheBytes, Instances: l.Instances, Latency: l.Latency}
}

// NewScaleStatus renders a record as of now. The partitions are those of
// Owners (with the load reported for each, if any); a host's Partitions
// are those Owners gives it. The recommendation is the record's as of now
// (Record.RecommendationAt): a stored 0 becomes 1 once a stored timer
// comes due, for a reader that serves the record while no host runs.
func NewScaleStatus(rec *loadmonitor.Record, now time.Time) *ScaleStatus {
	recm := rec.RecommendationAt(now, 0)
	s := &ScaleStatus{
		RecommendedHosts: recm.Hosts,
		Recommendation:   ScaleDecision{Hosts: recm.Hosts, Reason: recm.Reason},
		PlacementVersion: rec.Version, Monitor: rec.Monitor, Updated: formatTime(rec.Updated),
		Hosts: []ScaleHost{}, Partitions: []ScalePartition{},
	}
	placed := map[string][]int{}
	n := max(len(rec.Owners), len(rec.Loads))
	var next time.Time
	for p := 0; p < n; p++ {
		sp := ScalePartition{Partition: p}
		if p < len(rec.Owners) {
			sp.Owner = rec.Owners[p]
			if sp.Owner != "" {
				placed[sp.Owner] = append(placed[sp.Owner], p)
			}
		}
		if p < len(rec.Loads) {
			l := rec.Loads[p]
			sp.ScalePartitionLoad = scaleLoad(l)
			t := &s.Totals
			t.WorkItems += l.WorkItems
			t.Activities += l.Activities
			t.Timers += l.Timers
			t.Outbox += l.Outbox
			t.InputLag += l.InputLag
			t.Events += l.Events
			t.CacheBytes += l.CacheBytes
			t.Instances += l.Instances
			if !l.NextTimer.IsZero() && (next.IsZero() || l.NextTimer.Before(next)) {
				next = l.NextTimer
			}
		}
		s.Partitions = append(s.Partitions, sp)
	}
	s.Totals.NextTimer = formatTime(next)
	for _, h := range rec.Hosts {
		sh := ScaleHost{ID: h.ID, Live: h.Live, Stopping: h.Stopping, Partitions: placed[h.ID],
			Running: append([]int(nil), h.Running...), LastReport: formatTime(h.LastReport)}
		if sh.Partitions == nil {
			sh.Partitions = []int{}
		}
		if sh.Running == nil {
			sh.Running = []int{}
		}
		sort.Ints(sh.Running)
		if h.Live {
			s.LiveHosts++
		}
		s.Hosts = append(s.Hosts, sh)
	}
	sort.Slice(s.Hosts, func(i, j int) bool { return s.Hosts[i].ID < s.Hosts[j].ID })
	return s
}

// scaleTimeout bounds reading the record (from storage, on a host that
// does not run the load monitor).
const scaleTimeout = 10 * time.Second

// ScaleHandler answers GET ScalePath with the ScaleStatus of src's record:
// 200 with the record, 503 with {"error": ...} while there is none (no
// load monitor ran yet, or reading it failed), 405 for other methods.
//
// KEDA's metrics-api scaler reads it as a metric of target value 1 per
// host (desired replicas = recommendedHosts):
//
//	triggers:
//	- type: metrics-api
//	  metadata:
//	    url: "http://netherite-probe:7071/runtime/webhooks/durabletask/scale"
//	    valueLocation: "recommendedHosts"
//	    targetValue: "1"
//	    activationTargetValue: "0"
func ScaleHandler(src ScaleSource) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method " + r.Method + " not allowed"})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), scaleTimeout)
		defer cancel()
		rec, err := src(ctx)
		switch {
		case err != nil:
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "no load monitor record: " + err.Error()})
		case rec == nil:
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "no load monitor record yet: no elastic host has run the load monitor of this task hub"})
		default:
			writeJSON(w, http.StatusOK, NewScaleStatus(rec, time.Now()))
		}
	})
}
