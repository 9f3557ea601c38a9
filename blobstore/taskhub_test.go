package blobstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/netherite-go/netherite/blobstore"
	"github.com/netherite-go/netherite/blobstore/blobtest"
	"github.com/netherite-go/netherite/faster"
)

// TestTaskHubParameters: taskhubparameters.json is created by the first
// writer; concurrent creators all end up with the winner's document.
func TestTaskHubParameters(t *testing.T) {
	t.Parallel()
	a := blobtest.Account(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	hub := "Hub" + blobtest.ContainerName(t)[len(blobtest.ContainerName(t))-12:]
	c, err := a.TaskHubContainer(hub)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "hub"+hub[3:]+"-storage" {
		t.Fatalf("container %q for hub %q", c.Name(), hub)
	}
	defer c.Delete(context.Background())

	if _, err := blobstore.ReadTaskHubParameters(ctx, c); !errors.Is(err, faster.ErrNotExist) {
		t.Fatalf("read before creation (no container): %v", err)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created []string
		stored  = map[string]bool{}
	)
	for i := range 6 {
		wg.Go(func() {
			doc := fmt.Sprintf(`{"taskHubName":%q,"taskHubGuid":"guid-%d"}`, hub, i)
			got, ok, err := blobstore.CreateTaskHubParameters(ctx, c, []byte(doc))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if ok {
				created = append(created, doc)
			}
			stored[string(got)] = true
		})
	}
	wg.Wait()
	if len(created) != 1 || len(stored) != 1 || !stored[created[0]] {
		t.Fatalf("created by %q; creators saw %v", created, stored)
	}
	got, err := blobstore.ReadTaskHubParameters(ctx, c)
	if err != nil || string(got) != created[0] {
		t.Fatalf("read %q, %v", got, err)
	}
	if _, err := a.TaskHubContainer("bad_hub"); err == nil {
		t.Fatal("bad hub name accepted")
	}
}
