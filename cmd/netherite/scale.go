package main

import (
	"context"
	"net/http"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/httpapi"
	"github.com/netherite-go/netherite/loadmonitor"
)

// scaleSource returns where a host's /scale and /metrics read the load
// monitor's record: the host's own view if it is elastic, else the task
// hub's storage (so that a host that runs no partition, such as
// `serve -partitions-owned none`, can answer KEDA while no elastic host
// runs).
func scaleSource(h *netherite.Host, opts netherite.Options) httpapi.ScaleSource {
	if h.Options().Elastic {
		return h.Scale
	}
	return func(ctx context.Context) (*loadmonitor.Record, error) {
		return netherite.TaskHubStatus(ctx, opts)
	}
}

// hostMetrics counts a host's partitions for /metrics.
func hostMetrics(id string, partitions func() []netherite.PartitionStatus) func() httpapi.HostMetrics {
	return func() httpapi.HostMetrics {
		m := httpapi.HostMetrics{HostID: id}
		for _, p := range partitions() {
			switch {
			case p.State == netherite.PartitionOK:
				m.Running++
			case p.Down():
				m.Down++
			}
		}
		return m
	}
}

// addScaleRoutes serves GET /runtime/webhooks/durabletask/scale and
// /metrics for h on mux.
func addScaleRoutes(mux *http.ServeMux, h *netherite.Host, opts netherite.Options) {
	src := scaleSource(h, opts)
	mux.Handle(httpapi.ScalePath, httpapi.ScaleHandler(src))
	mux.Handle(httpapi.MetricsPath, httpapi.MetricsHandler(src, hostMetrics(h.ID(), h.Partitions)))
}
