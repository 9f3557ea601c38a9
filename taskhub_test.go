package netherite_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/durable"
)

func TestTaskHubParametersAreChecked(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := durable.NewRegistry()
	h, err := netherite.Start(ctx, netherite.Options{Storage: dir, PartitionCount: 4}, r)
	if err != nil {
		t.Fatal(err)
	}
	hub := h.TaskHub()
	if hub == nil || hub.PartitionCount != 4 || hub.TaskHubGUID == "" || hub.FormatVersion != netherite.StorageFormatVersion {
		t.Fatalf("task hub parameters %+v", hub)
	}
	// A second host on the same partitions is refused while the first runs.
	if h2, err := netherite.Start(ctx, netherite.Options{Storage: dir}, r); err == nil {
		h2.Stop(ctx)
		t.Fatal("two hosts ran the same partitions of one directory")
	} else if !strings.Contains(err.Error(), "in use by another host") {
		t.Fatalf("second host: %v", err)
	}
	if err := h.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Another partition count is refused; none adopts the hub's.
	if _, err := netherite.Start(ctx, netherite.Options{Storage: dir, PartitionCount: 6}, r); err == nil ||
		!strings.Contains(err.Error(), "has 4 partitions") {
		t.Fatalf("start with 6 partitions on a 4-partition hub: %v", err)
	}
	h, err = netherite.Start(ctx, netherite.Options{Storage: dir}, r)
	if err != nil {
		t.Fatal(err)
	}
	if h.Options().PartitionCount != 4 || h.TaskHub().TaskHubGUID != hub.TaskHubGUID {
		t.Fatalf("restart: %d partitions, hub %+v", h.Options().PartitionCount, h.TaskHub())
	}
	h.Stop(ctx)
	// Another task hub name in the same directory is refused.
	if _, err := netherite.Start(ctx, netherite.Options{Storage: dir, TaskHub: "other"}, r); err == nil ||
		!strings.Contains(err.Error(), `holds task hub "default", not "other"`) {
		t.Fatalf("other hub name: %v", err)
	}
	// An unknown storage format is refused.
	path := filepath.Join(dir, "taskhubparameters.json")
	b, _ := os.ReadFile(path)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	m["formatVersion"] = 99
	b, _ = json.Marshal(m)
	_ = os.WriteFile(path, b, 0o644)
	if _, err := netherite.Start(ctx, netherite.Options{Storage: dir}, r); err == nil || !strings.Contains(err.Error(), "storage format 99") {
		t.Fatalf("unknown format: %v", err)
	}
}

func TestTaskHubCreateInfoDelete(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := netherite.Options{Storage: dir, PartitionCount: 3, TaskHub: "orders"}
	p, err := netherite.CreateTaskHub(ctx, opts)
	if err != nil || p.PartitionCount != 3 || p.TaskHubName != "orders" {
		t.Fatalf("create: %+v %v", p, err)
	}
	info, err := netherite.TaskHubInfo(ctx, netherite.Options{Storage: dir, TaskHub: "orders"})
	if err != nil || info.TaskHubGUID != p.TaskHubGUID {
		t.Fatalf("info: %+v %v", info, err)
	}
	h, err := netherite.Start(ctx, netherite.Options{Storage: dir, TaskHub: "orders"}, durable.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := netherite.DeleteTaskHub(ctx, opts); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("delete while running: %v", err)
	}
	h.Stop(ctx)
	if err := netherite.DeleteTaskHub(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := netherite.TaskHubInfo(ctx, opts); err == nil {
		t.Fatal("task hub still there after delete")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}
