package emulator

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRunFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Run(context.Background(), []string{"-nosuchflag"}, &out, &errOut); code != 2 {
		t.Fatalf("bad flag: exit %d", code)
	}
	if code := Run(context.Background(), []string{"-config", filepath.Join(t.TempDir(), "none.json")}, &out, &errOut); code != 1 {
		t.Fatalf("missing config: exit %d", code)
	}
	cfg := filepath.Join(t.TempDir(), "Config.json")
	os.WriteFile(cfg, []byte(`{"UserConfig":{"NamespaceConfig":[{"Type":"EventHub","Name":"ns","Entities":[{"Name":"cli","PartitionCount":"2"}]}]}}`), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stdout syncBuffer
	go func() {
		done <- Run(ctx, []string{"-config", cfg, "-addr", "127.0.0.1:0", "-health-addr", "127.0.0.1:0", "-data", t.TempDir()}, &stdout, &errOut)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stdout.String(), "export NETHERITE_EVENTHUBS=") {
		if time.Now().After(deadline) {
			t.Fatalf("no connection string printed: %q %q", stdout.String(), errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := stdout.String(); !strings.Contains(s, "UseDevelopmentEmulator=true") || !strings.Contains(s, "[cli]") {
		t.Fatalf("output: %s", s)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
