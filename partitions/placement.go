package partitions

import (
	"strconv"
	"strings"
)

// PartitionOf places an instance on a partition: FNV-1a of the instance id
// modulo the partition count, except that an id ending in "!N" goes to
// partition N mod count (so tests and benchmarks can force placement).
func PartitionOf(instanceID string, count int) int {
	if i := strings.LastIndexByte(instanceID, '!'); i >= 0 && i+1 < len(instanceID) {
		if n, err := strconv.ParseUint(instanceID[i+1:], 10, 32); err == nil {
			return int(n % uint64(count))
		}
	}
	h := uint32(2166136261)
	for i := 0; i < len(instanceID); i++ {
		h ^= uint32(instanceID[i])
		h *= 16777619
	}
	return int(h % uint32(count))
}
