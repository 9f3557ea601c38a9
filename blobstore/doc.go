// Package blobstore keeps a task hub's state in Azure Storage blobs (or
// Azurite): a faster.Device on page blobs, a faster.MetaStore on block
// blobs, the partition lease, and the task hub's metadata.
//
// # Layout (DESIGN.md §5)
//
//	container <hub>-storage                          ContainerName
//	  taskhubparameters.json                         CreateTaskHubParameters (first writer wins)
//	  <hub GUID>/pNN/commit-lease                    the partition lease; content: commit-log.meta
//	  <hub GUID>/pNN/commit-log/commit-log.NNNNNN    commit log segments (page blobs)
//	  <hub GUID>/pNN/store/store.NNNNNN              KV log segments (page blobs)
//	  <hub GUID>/pNN/store/last-checkpoint.json ...  KV checkpoint documents (block blobs)
//	  <hub GUID>/pNN/last-checkpoint.json ...        other partition documents (block blobs)
//	  <hub GUID>/loadmonitor/monitor-lease           the load monitor's lease; content: its record
//	                                                 (AcquireMonitor, ReadMonitorRecord)
//
// OpenPartition acquires a partition's lease and returns its two devices
// and its metadata store, the shape partitions.OpenDurableStore takes.
//
// # Connection
//
// NewAccount takes a connection string, "UseDevelopmentStorage=true"
// (Azurite's well-known account on 127.0.0.1:10000), or an account URL
// (https://NAME.blob.core.windows.net) authenticated with azidentity's
// DefaultAzureCredential. Tests find their account in the environment
// variable NETHERITE_AZURITE (see package blobtest and scripts/azurite).
//
// # Durability
//
// A Put Page or Put Blob is durable (on every replica) when the service
// acknowledges it, so PageBlobDevice.Flush has nothing to do. A Put Blob
// replaces a blob atomically, so every metadata write is atomic.
//
// # Retries
//
// The SDK's own retries are turned off; every request goes through
// RetryOptions: throttling (429, 503), server errors (500, 502, 504),
// timeouts and transport errors are retried with exponential backoff and
// jitter, honouring Retry-After, for a bounded number of attempts; then
// the error names the device or document, the blob, the address, the
// number of attempts and the last error. Other errors are not retried.
//
// # Single writer: the lease and write fencing
//
// One host writes a partition: the one holding the lease on
// pNN/commit-lease (Lease: 45 s, renewed every 30 s; a new owner waits
// for release or expiry). Azure can condition a write on a lease id only
// for the leased blob itself, so the fencing has three layers:
//
//  1. The commit point is fenced by the service. The commit log's
//     committed tail (commit-log.meta, written after each commit's data)
//     is the content of the lease blob, written with the lease id
//     (MetaOptions.LeaseDocument). Once the lease is broken or taken, the
//     old owner's next commit fails (ErrLeaseLost) and its records
//     written beyond the committed tail are never trusted: recovery
//     accepts records past the tail only from the last instance's epoch,
//     and the new owner's OpenLog starts a new epoch.
//
//  2. Every other write is fenced by this host's own knowledge of the
//     lease. The Lease is shared by the devices and the metadata store
//     (DeviceOptions.Lease, MetaOptions.Lease); before each request
//     attempt they check it, and refuse (ErrLeaseLost) once it is lost
//     (renewal rejected, a conditioned write rejected, a conflict below)
//     or once Guard (40 s) has passed since the start of the last
//     successful renewal. The service's 45 s start later (when the
//     renewal arrives), so this host stops writing at least 5 s before
//     another can acquire the lease, and each attempt's context ends
//     halfway through that margin, so a request in flight is abandoned
//     before the lease can expire. This is what protects against a new
//     owner after an expiry (a host that hangs or loses the network).
//
//  3. Conflicting writes to the same blob are detected by the service
//     through ETags ("writes conditioned on the ETag while leased"). A
//     leased device conditions each Put Page (and segment delete) on the
//     ETag its previous write to that segment blob returned (the first
//     write of a device instance adopts the blob's current ETag, or
//     creates the blob with If-None-Match: *); writes to one segment are
//     therefore serialized. The metadata store conditions each write on
//     the ETag it last read or wrote (If-Match), or on absence
//     (If-None-Match: *), and with a lease its first read of a document
//     fences it (Set Blob Metadata conditioned on the ETag just read, so
//     the ETag changes). So when a lease is broken and a new owner starts
//     before the old owner has noticed: the old owner cannot replace a
//     document the new owner has read (the KV's checkpoint record, say),
//     and of two writes to one segment blob, the one that comes after the
//     other owner has written the blob fails (ErrConflict and
//     ErrLeaseLost; the lease is declared lost) instead of silently
//     overwriting data. What the old owner writes before the new owner
//     reads or first writes a blob is either seen by the new owner's
//     recovery, or lies beyond what it recovered (the log beyond its
//     committed tail, the KV beyond its checkpoint), which nothing
//     installed can point to any more.
//
// Why the commit point stays in the lease blob: on local disk a commit is
// one write and one flush, with the committed position in a checksummed
// commit record in the log (faster, log format 2). On blobs the commit log
// keeps format 1 instead: BlobMeta is a faster.FencedMeta for the lease
// document, so the log writes commit-log.meta after each commit's pages,
// and that lease-conditioned Put Blob is what makes a commit count. A
// commit record in a page blob would be fenced only by layers 2 and 3: a
// host whose lease was broken (not expired) keeps a valid guard, and its
// Put Page to the tail segment succeeds as long as the new owner has not
// yet written that blob; it would then take its commit for durable and
// release its outbox while the new owner, which recovered before that
// write, goes on without it. Closing that gap needs the new owner to fence
// the tail segment blob before recovering (change its ETag, as a fencing
// read does for documents) and every segment switch to go through the
// lease blob; until that is built and tested, the lease-conditioned
// document stays the commit point. The price is a second request per
// commit (Put Page, then Put Blob), as before; Flush is free on blobs, so
// local disk's fsync saving does not apply here anyway.
//
// Why not lease every segment blob: leases on the segment blobs (with the
// partition lease's id) would let the service fence each write, but they
// must be renewed (or be infinite and then broken by every new owner and
// by task hub deletion), cost a request per blob per owner, and still
// leave a window for blobs created after a takeover. ETags give the same
// detection of a second writer on a blob without extra state; the
// time-based guard covers expiry, the lease-conditioned commit point
// covers breaks.
//
// Retries and ETags: if an attempt fails in a way that leaves its effect
// unknown (timeout, connection reset, 500) and the retry then fails its
// ETag condition, the device (or store) reads the range (document) back:
// if it holds exactly the data being written, the earlier attempt was
// applied and its ETag is adopted; otherwise it is a conflict.
package blobstore
