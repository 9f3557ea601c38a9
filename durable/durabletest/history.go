package durabletest

import (
	"fmt"

	"github.com/netherite-go/netherite/core"
)

// CheckExactlyOnce checks a completed orchestration's history for what
// exactly-once execution promises: one completion event, and every
// scheduled task's result recorded once. Crash tests run it on every
// acknowledged instance.
func CheckExactlyOnce(history []*core.HistoryEvent) error {
	scheduled, completed, ended := map[int32]int{}, map[int32]int{}, 0
	for _, e := range history {
		switch e.Kind {
		case core.EventTaskScheduled:
			scheduled[e.EventID]++
		case core.EventTaskCompleted, core.EventTaskFailed:
			completed[e.TaskScheduledID]++
		case core.EventExecutionCompleted:
			ended++
		}
	}
	if ended != 1 {
		return fmt.Errorf("%d completion events", ended)
	}
	for seq, n := range scheduled {
		if n != 1 || completed[seq] != 1 {
			return fmt.Errorf("task %d scheduled %d times, result recorded %d times", seq, n, completed[seq])
		}
	}
	return nil
}
