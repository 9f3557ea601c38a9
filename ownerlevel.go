package netherite

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/netherite-go/netherite/faster"
)

// The owner level (Event Hubs epoch) of a partition's receiver must grow
// with every ownership of the partition, across hosts: a receiver with a
// higher level takes the Event Hubs partition from one with a lower level,
// so a host that lost the partition's lease (or lock) cannot keep reading
// once the next owner has started. The level is taken when the host has
// just acquired the partition's lease or lock file: the current time in
// nanoseconds, but always above the level recorded by the previous owner
// (so clock skew between hosts cannot make it go back), and recorded in
// the partition's storage for the next owner. The write is conditioned on
// the lease (blob storage) or done under the lock file (directory).
const ownerLevelDoc = "owner-level"

// nextOwnerLevel records and returns the owner level of a new ownership.
func nextOwnerLevel(meta faster.MetaStore, now time.Time) (int64, error) {
	var prev int64
	b, err := meta.ReadFile(ownerLevelDoc)
	switch {
	case err == nil:
		prev, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("owner level: %s holds %q: %w", ownerLevelDoc, b, err)
		}
	case errors.Is(err, faster.ErrNotExist):
	default:
		return 0, fmt.Errorf("owner level: read: %w", err)
	}
	level := max(now.UnixNano(), prev+1)
	if err := meta.WriteFile(ownerLevelDoc, []byte(strconv.FormatInt(level, 10))); err != nil {
		return 0, fmt.Errorf("owner level: write: %w", err)
	}
	return level, nil
}
