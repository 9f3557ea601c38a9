package azstorage_test

import (
	"sync"
	"testing"
	"time"

	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/samples"
)

func TestManyHello(t *testing.T) {
	r := durable.NewRegistry()
	samples.Register(r)
	cfg := testConfig(t, hubName())
	b := startBackend(t, cfg, r)
	ctx := testCtx(t)
	c := b.Client()
	const n = 40
	begin := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := c.StartOrchestration(ctx, samples.HelloSequence, nil)
			if err != nil {
				errs[i] = err
				return
			}
			_, errs[i] = c.WaitForCompletion(ctx, id)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st := b.Stats()
	t.Logf("%d hello sequences in %v; stats %+v; %.1f requests/s", n, time.Since(begin), st, float64(st.Requests())/time.Since(begin).Seconds())
}
