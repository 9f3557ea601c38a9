package netherite_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/blobstore/blobtest"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/samples"
)

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestStartLogsNoAccountKey: a host on Azure Storage, logging at debug
// level, never writes the account key.
func TestStartLogsNoAccountKey(t *testing.T) {
	conn := blobtest.Connection(t)
	var key string
	for _, part := range strings.Split(conn, ";") {
		if k, v, ok := strings.Cut(part, "="); ok && strings.EqualFold(k, "AccountKey") {
			key = v
		}
	}
	if key == "" {
		t.Skip("the test account's connection string has no AccountKey")
	}
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := durable.NewRegistry()
	samples.Register(r)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := netherite.Options{Storage: conn, TaskHub: fmt.Sprintf("keylog%d", time.Now().UnixNano()%1e12), PartitionCount: 2, Logger: logger}
	h, err := netherite.Start(ctx, opts, r)
	if err != nil {
		t.Fatal(err)
	}
	id, err := h.Client().StartOrchestration(ctx, "HelloSequence", nil)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := h.Client().WaitForCompletion(ctx, id); err != nil || s.RuntimeStatus.String() != "Completed" {
		t.Fatalf("%v %v", s, err)
	}
	if err := h.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := netherite.DeleteTaskHub(ctx, opts); err != nil {
		t.Error(err)
	}
	out := logs.String()
	if !strings.Contains(out, "host started") {
		t.Fatalf("the start was not logged:\n%s", out)
	}
	if strings.Contains(out, key) {
		t.Fatalf("the logs contain the account key:\n%s", out)
	}
}
