// Package partitions is one partition of a task hub as a deterministic
// state machine (State.Apply) and its runtime (Partition: intake, log
// worker, work items, timers, and the Courier that decides what leaves for
// other partitions and clients).
//
// What may happen before a step is durable is Config.Speculation (none,
// local, global). Under global speculation, messages to other partitions
// leave before their step is durable, tagged with the sender's
// incarnation; receivers make nothing durable that depends on them until
// the sender confirms the step, and roll back if it was lost. The
// invariant: no durable state depends on a step that is not durable. The
// design and its proof sketch are in doc/speculation.md; the hops of a
// cross-partition step and their commits in doc/hops.md.
package partitions
