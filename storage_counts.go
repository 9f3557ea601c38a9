package netherite

// StorageRequestsByKind counts the HTTP requests made to Azure Storage by
// kind, named as in package storagecount ("blob read", "blob write",
// "blob lease", "queue read", "table write"...), leaving out zero
// counts. It is empty with other storage.
func (h *Host) StorageRequestsByKind() map[string]int64 {
	m := map[string]int64{}
	if s, ok := h.AzureStorageStats(); ok {
		for k, v := range map[string]int64{"queue read": s.QueueReads, "queue write": s.QueueWrites, "table read": s.TableReads,
			"table write": s.TableWrites, "blob read": s.BlobReads, "blob write": s.BlobWrites} {
			if v > 0 {
				m[k] = v
			}
		}
		return m
	}
	if b, ok := h.store.(*blobStore); ok && b.hub != nil {
		return b.hub.account.RequestsByKind()
	}
	return m
}
