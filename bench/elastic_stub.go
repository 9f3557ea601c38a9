//go:build !elastic_wip

package bench

import (
	"context"
	"errors"
)

// errNoElastic: the elastic host (Options.Elastic) is not on this branch
// yet; build with -tags elastic_wip against it.
var errNoElastic = errors.New("the elastic benchmarks need the elastic host (Options.Elastic), not in this build")

// RunElastic needs the elastic host.
func RunElastic(ctx context.Context, cfg ElasticConfig) (*ElasticReport, error) {
	return nil, errNoElastic
}

// RunHandover needs the elastic host.
func RunHandover(ctx context.Context, cfg HandoverConfig) (*HandoverResult, error) {
	return nil, errNoElastic
}
