package durabletest

import (
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/core"
)

func TestCheckExactlyOnce(t *testing.T) {
	now := time.Unix(0, 0)
	ev := func(k core.EventKind, id, sched int32) *core.HistoryEvent {
		e := core.NewEvent(k, now)
		e.EventID, e.TaskScheduledID = id, sched
		return e
	}
	good := []*core.HistoryEvent{ev(core.EventTaskScheduled, 0, 0), ev(core.EventTaskCompleted, -1, 0), ev(core.EventExecutionCompleted, 1, 0)}
	if err := CheckExactlyOnce(good); err != nil {
		t.Fatalf("a clean history: %v", err)
	}
	for _, c := range []struct {
		name    string
		history []*core.HistoryEvent
		want    string
	}{
		{"no completion", good[:2], "0 completion events"},
		{"two completions", append(good[:3:3], ev(core.EventExecutionCompleted, 2, 0)), "2 completion events"},
		{"result twice", append([]*core.HistoryEvent{ev(core.EventTaskCompleted, -1, 0)}, good...), "result recorded 2 times"},
		{"no result", []*core.HistoryEvent{good[0], good[2]}, "result recorded 0 times"},
	} {
		err := CheckExactlyOnce(c.history)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", c.name, err, c.want)
		}
	}
}
