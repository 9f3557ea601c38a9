package main

import (
	"context"
	"errors"
	"net/http"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/httpapi"
	"github.com/netherite-go/netherite/loadmonitor"
)

// scaler is what the scale surfaces need of a host (netherite.Host in
// elastic builds).
type scaler interface {
	ID() string
	Scale(ctx context.Context) (*loadmonitor.Record, error)
}

// scaleSource returns where a host's /scale and /metrics read the load
// monitor's record.
func scaleSource(h any) httpapi.ScaleSource {
	if s, ok := h.(scaler); ok {
		return s.Scale
	}
	return func(context.Context) (*loadmonitor.Record, error) {
		return nil, errors.New("this host has no load monitor (not an elastic build)")
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
func addScaleRoutes(mux *http.ServeMux, h *netherite.Host) {
	id := ""
	if s, ok := any(h).(scaler); ok {
		id = s.ID()
	}
	src := scaleSource(h)
	mux.Handle(httpapi.ScalePath, httpapi.ScaleHandler(src))
	mux.Handle(httpapi.MetricsPath, httpapi.MetricsHandler(src, hostMetrics(id, h.Partitions)))
}
