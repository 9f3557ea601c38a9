package azstorage

import (
	"strings"
	"testing"
	"time"
)

func TestControlQueuePlacement(t *testing.T) {
	// FNV-1a 32 of "a" is 0xe40c292c.
	if got, want := controlQueueOf("a", 16), int(uint32(0xe40c292c)%16); got != want {
		t.Fatalf("controlQueueOf(a, 16) = %d, want %d", got, want)
	}
	counts := make([]int, 4)
	for i := 0; i < 4000; i++ {
		q := controlQueueOf(strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune(i)), 4)
		if q < 0 || q >= 4 {
			t.Fatalf("queue %d out of range", q)
		}
		counts[q]++
	}
	for q, n := range counts {
		if n < 700 {
			t.Errorf("control queue %d got %d of 4000 instances: placement is skewed (%v)", q, n, counts)
		}
	}
	if controlQueueOf("same", 4) != controlQueueOf("same", 4) {
		t.Fatal("placement is not deterministic")
	}
	if got := controlQueueName("hub", 3); got != "hub-control-03" {
		t.Fatalf("control queue name %q", got)
	}
}

func TestBackoff(t *testing.T) {
	b := newBackoff(10*time.Millisecond, time.Second)
	b.rnd = func() float64 { return 0.5 } // factor 2
	var got []time.Duration
	for i := 0; i < 10; i++ {
		got = append(got, b.next())
	}
	want := []time.Duration{10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("delays %v, want %v ms", got, want)
		}
	}
	b.reset()
	if d := b.next(); d != 10*time.Millisecond {
		t.Fatalf("after reset: %v, want 10ms", d)
	}
	// Random factors stay within [1.5, 2.5) and under the cap.
	r := newBackoff(time.Millisecond, 30*time.Second)
	prev := r.next()
	for i := 0; i < 30; i++ {
		d := r.next()
		if d > 30*time.Second || (d < 30*time.Second && (float64(d) < 1.5*float64(prev)-1 || float64(d) >= 2.5*float64(prev)+1)) {
			t.Fatalf("delay %v after %v", d, prev)
		}
		prev = d
	}
	if prev != 30*time.Second {
		t.Fatalf("the delay did not reach the cap: %v", prev)
	}
}

func TestBatches(t *testing.T) {
	sizes := make([]int, 250)
	for i := range sizes {
		sizes[i] = 1000
	}
	got := batches(sizes, 100, 4<<20)
	if len(got) != 3 || got[0] != [2]int{0, 100} || got[1] != [2]int{100, 200} || got[2] != [2]int{200, 250} {
		t.Fatalf("by count: %v", got)
	}
	big := []int{3 << 20, 2 << 20, 1 << 20, 1 << 20, 5 << 20}
	got = batches(big, 100, 4<<20)
	want := [][2]int{{0, 1}, {1, 4}, {4, 5}} // 2+1+1 MiB is exactly the limit
	if len(got) != len(want) {
		t.Fatalf("by bytes: %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("by bytes: %v, want %v", got, want)
		}
	}
	if got := batches(nil, 100, 4<<20); len(got) != 0 {
		t.Fatalf("empty: %v", got)
	}
}

func TestEscapeKey(t *testing.T) {
	for _, id := range []string{"plain", "a/b", `x\y#z?w`, "it's 100%", "%2F", "@counter@k/1", "ünïcødé"} {
		k := escapeKey(id)
		if strings.ContainsAny(k, `/\#?'`) {
			t.Errorf("escapeKey(%q) = %q still holds a forbidden character", id, k)
		}
		if back := unescapeKey(k); back != id {
			t.Errorf("unescapeKey(escapeKey(%q)) = %q", id, back)
		}
	}
}

func TestParseConnection(t *testing.T) {
	e, err := parseConnection("UseDevelopmentStorage=true")
	if err != nil || e.queue != "http://127.0.0.1:10001/devstoreaccount1" || e.table != "http://127.0.0.1:10002/devstoreaccount1" {
		t.Fatalf("dev storage: %+v %v", e, err)
	}
	e, err = parseConnection("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net")
	if err != nil || e.blob != "https://acct.blob.core.windows.net" || e.queue != "https://acct.queue.core.windows.net" {
		t.Fatalf("account: %+v %v", e, err)
	}
	for _, bad := range []string{"", "memory", "./dir", "AccountName=acct",
		"AccountName=a;AccountKey=c2VjcmV0;BlobEndpoint=http://127.0.0.1:1/a"} {
		_, err := parseConnection(bad)
		if err == nil {
			t.Errorf("parseConnection(%q): no error", bad)
		} else if strings.Contains(err.Error(), "c2VjcmV0") {
			t.Errorf("error quotes the key: %v", err)
		}
	}
}

func TestHubName(t *testing.T) {
	for _, ok := range []string{"default", "Hub1", "abc"} {
		if err := checkHubName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"ab", "1hub", "my-hub", strings.Repeat("a", 46)} {
		if checkHubName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
