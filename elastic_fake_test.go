package netherite

// A stand-in for the load monitor's run loop, for the coordinator's tests
// until loadmonitor.Run (helper "lm") is on main.

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/netherite-go/netherite/loadmonitor"
	"github.com/netherite-go/netherite/transport"
)

// useFakeMonitor installs the stand-in; the returned function removes it.
func useFakeMonitor() (restore func()) {
	old := runLoadMonitor
	runLoadMonitor = fakeRunMonitor
	return func() { runLoadMonitor = old }
}

// fakeRunMonitor balances partition counts over the live hosts.
func fakeRunMonitor(ctx context.Context, r monitorRun) error {
	type hostState struct {
		client   string
		last     time.Time
		stopping bool
		running  []int
	}
	hosts := map[string]*hostState{}
	rec := &loadmonitor.Record{Owners: make([]string, r.partitions)}
	if r.start != nil {
		rec.Version, rec.Position = r.start.Version, r.start.Position
		copy(rec.Owners, r.start.Owners)
		for _, h := range r.start.Hosts {
			if h.Live {
				hosts[h.ID] = &hostState{client: h.ClientID, last: time.Now()}
			}
		}
	}
	type batch struct {
		ps  []*transport.Packet
		end uint64
	}
	batches := make(chan batch)
	go func() {
		pos := rec.Position
		for {
			ps, end, err := r.receive(ctx, pos)
			if err != nil {
				return
			}
			select {
			case batches <- batch{ps, end}:
			case <-ctx.Done():
				return
			}
			pos = end
		}
	}()
	tick := time.NewTicker(r.interval / 2)
	defer tick.Stop()
	var lastWrite time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-batches:
			for _, p := range b.ps {
				if p.Load == nil {
					continue
				}
				h := hosts[p.Load.Host]
				if h == nil {
					h = &hostState{}
					hosts[p.Load.Host] = h
				}
				h.client, h.last, h.stopping = p.Load.ClientID, time.Now(), p.Load.Stopping
				h.running = h.running[:0]
				for _, l := range p.Load.Partitions {
					h.running = append(h.running, l.Partition)
				}
			}
			rec.Position = b.end
		case <-tick.C:
		}
		now := time.Now()
		var live []string
		for id, h := range hosts {
			if !h.stopping && now.Sub(h.last) < r.hostTimeout {
				live = append(live, id)
			}
		}
		owners := balance(rec.Owners, live)
		changed := !slices.Equal(owners, rec.Owners)
		if changed {
			rec.Version++
			rec.Owners = owners
		}
		if !changed && now.Sub(lastWrite) < r.interval {
			continue
		}
		rec.Monitor, rec.Updated, rec.Hosts = r.hostID, now, nil
		for id, h := range hosts {
			rec.Hosts = append(rec.Hosts, loadmonitor.HostInfo{ID: id, ClientID: h.client, LastReport: h.last,
				Live: slices.Contains(live, id), Stopping: h.stopping, Running: slices.Clone(h.running)})
		}
		sort.Slice(rec.Hosts, func(i, j int) bool { return rec.Hosts[i].ID < rec.Hosts[j].ID })
		if err := r.write(ctx, rec); err != nil {
			return err
		}
		lastWrite = now
		r.published(rec)
		if changed {
			for _, id := range live {
				_ = r.send(hosts[id].client, &transport.PlacementUpdate{Version: rec.Version, Owners: slices.Clone(owners), Monitor: r.hostID})
			}
		}
	}
}

// balance moves as few partitions as it can so that the live hosts' counts
// differ by at most one.
func balance(cur []string, live []string) []string {
	out := slices.Clone(cur)
	if len(live) == 0 {
		return out
	}
	count := map[string]int{}
	for _, id := range live {
		count[id] = 0
	}
	var free []int
	for p, o := range out {
		if _, ok := count[o]; ok {
			count[o]++
		} else {
			free = append(free, p)
		}
	}
	// Quotas: the hosts holding most keep the extra ones.
	order := slices.Clone(live)
	sort.Slice(order, func(i, j int) bool {
		if count[order[i]] != count[order[j]] {
			return count[order[i]] > count[order[j]]
		}
		return order[i] < order[j]
	})
	quota := map[string]int{}
	for k, id := range order {
		quota[id] = len(out) / len(live)
		if k < len(out)%len(live) {
			quota[id]++
		}
	}
	for p, o := range out {
		if q, ok := quota[o]; ok && count[o] > q {
			count[o]--
			free = append(free, p)
		}
	}
	sort.Ints(free)
	for _, p := range free {
		for _, id := range order {
			if count[id] < quota[id] {
				out[p] = id
				count[id]++
				break
			}
		}
	}
	return out
}
