// Package azstorage is the Azure Storage baseline: a second backend behind
// the same durable SDK and durable.Client, built after the design of
// DurableTask.AzureStorage (DTFx's Azure Storage provider, the default
// provider of Durable Functions), so that Netherite can be measured
// against it on the same machine, workloads and storage emulator. It
// exists to be measured against: its defaults are Durable Functions'.
//
// # Storage layout (task hub H)
//
//   - Control queues H-control-00 … H-control-NN (ControlQueues, default 4,
//     1 to 16). An instance's messages (starts, events, activity and
//     sub-orchestration results, timers, entity requests) go to the
//     control queue chosen by the 32-bit FNV-1a hash of its instance id
//     modulo the number of queues.
//   - One work-item queue H-workitems for activities; any worker takes
//     them.
//   - The HHistory table: one row per history event, PartitionKey the
//     (escaped) instance id, RowKey the event's sequence number in 16 hex
//     digits, plus a "sentinel" row with the execution id, the event count
//     and CheckpointCompletedTimestamp. Every checkpoint is conditional on
//     the sentinel's ETag (or creates it), so of two workers that ran the
//     same episode only one commits. Rows go in entity group transactions
//     of at most 100 entities and 4 MiB. Event payloads over 60 KB go,
//     gzipped, to blobs.
//   - The HInstances table: one row per instance (RowKey empty) with name,
//     status, input, output, custom status and times; status queries and
//     listings read only this table, never history.
//   - H-largemessages: queue messages over 45 KB are gzipped into a blob
//     and the queue message carries its name; so are large payloads of
//     history and instance rows. Blobs go when the instance is purged.
//   - H-leases: one blob per control queue, leased by the worker that
//     processes that queue.
//
// # Workers
//
// A worker holds blob leases on control queues (30 s, renewed every 10 s)
// and balances them with the other workers it sees in the lease blobs'
// metadata: every 10 s it takes free leases up to its fair share
// (queues / workers, rounded up), then steals one lease, by changing it to
// its own lease id, from the worker holding the most. The victim notices
// at its next renewal and stops dequeuing that queue; a checkpoint it was
// still making loses the sentinel's ETag race.
//
// Each owned control queue is polled for batches of up to 32 messages with
// a 5-minute visibility timeout, with at most 256 messages buffered per
// queue. An empty poll waits a random, exponentially growing delay, up to
// MaxQueuePollingInterval (30 s by default, as in Durable Functions), and
// drops back to 10 ms when a message arrives. This back-off is what makes
// the baseline's latency when idle.
//
// Messages are grouped by instance into sessions; one episode runs per
// instance at a time, over all its messages buffered so far. An episode
// loads the history (one table query), replays it, and checkpoints in
// DTFx's order:
//
//  1. enqueue the outgoing messages (activities, timers, messages to other
//     instances, in parallel; those for one instance in order);
//  2. write the new history rows and the sentinel (ETag-conditional), then
//     merge the instance row;
//  3. delete the consumed messages.
//
// A crash between the steps repeats the episode: its messages are sent
// again (duplicates are tolerated downstream: a result for a completed
// task is ignored on replay) and its activities run again. Because
// messages are sent before history is written, a response can overtake the
// checkpoint that scheduled its task; as in DTFx, a response for a task
// not in the history whose send time is after the instance's
// CheckpointCompletedTimestamp is out of order and is abandoned for a
// second and retried (after five tries it is taken as it is). A message for
// an instance whose history does not exist yet, but whose Pending row
// does, waits for the instance's start the same way; other messages for
// missing or ended instances are dropped (lock grants turn into releases).
// A crash between the ended history and the instance row would leave the
// row Running; the crashed worker's messages come back to the ended
// instance, which then rewrites the row from the history's completion.
// Continue-as-new runs the next execution in the same work item and
// replaces the history.
//
// Activities are dequeued from the work-item queue (batches of up to 32
// while slots are free, same back-off), run, their result sent to the
// orchestration's control queue, then the work item deleted: at least
// once, so a crash runs them again.
//
// Timers and scheduled starts and signals are control-queue messages with
// an initial visibility delay (rounded up to whole seconds, at most 6 days;
// one that comes up early is sent again with the rest of its delay).
//
// Entities run their batches with the SDK's entity executor, which
// implements the lock protocol of critical sections; an entity's state is
// one row of the History table next to its sentinel (ETag-conditional, like
// an episode), and its Instances row carries the state for GetEntity and
// ListEntities. DTFx runs entities as orchestrations that continue as new
// with their state; one state row costs the same kinds of requests.
//
// Extended sessions (ExtendedSessions, off by default as in Durable
// Functions) keep an orchestration's history, sentinel ETag and suspended
// execution in memory between episodes while the worker holds its queue,
// evicted after 30 s idle.
//
// # Client
//
// StartOrchestration writes the Pending instance row, then enqueues the
// start; RaiseEvent, Terminate, Suspend and Resume read the instance row
// (for the client's errors) and enqueue a message; Purge deletes history
// rows, instance row and blobs; Query and ListEntities page through the
// Instances table. Waits poll the instance row with a random exponential
// back-off (20 ms to 1 s); when the process also runs a worker, its own
// checkpoints wake them at once and the polling slows to 1 s to 5 s.
//
// # Counting
//
// Every HTTP request (attempt) is counted by service and direction (GET
// and HEAD are reads), and the worker counts episodes, entity batches,
// activities, history loads, ETag conflicts and out-of-order messages:
// see Backend.Stats. Benchmarks divide the requests by orchestration
// steps.
//
// # Sources
//
// Read to learn the design, not copied:
//   - Durable Functions docs, "Azure Storage provider":
//     https://learn.microsoft.com/azure/azure-functions/durable/durable-functions-azure-storage-provider
//     (queues, History and Instances tables, leases, polling back-off,
//     extended sessions, 45 KB large messages).
//   - Durable Functions docs, "Performance and scale":
//     https://learn.microsoft.com/azure/azure-functions/durable/durable-functions-perf-and-scale
//     (MaxQueuePollingInterval 30 s, batches of 32, partition count).
//   - github.com/Azure/durabletask, src/DurableTask.AzureStorage:
//     AzureStorageOrchestrationService.cs (checkpoint order: enqueue, then
//     history, then delete), OrchestrationSession.cs (out-of-order
//     messages against the last checkpoint time), Tracking/
//     AzureTableTrackingStore.cs (sentinel row, ETag, 100-entity / 4 MB
//     batches, 60 KB table properties), MessageManager.cs (large messages),
//     Partitioning/ (blob leases, balancing by stealing),
//     Fnv1aHashHelper.cs (placement).
package azstorage
