package netherite

// StorageRequestsByKind counts the HTTP requests made to Azure Storage by
// kind ("blob read", "blob write", "blob lease", "blob other"; see
// package storagecount), leaving out zero counts. It is empty with other
// storage.
func (h *Host) StorageRequestsByKind() map[string]int64 {
	if h.blobAccount == nil {
		return map[string]int64{}
	}
	return h.blobAccount.RequestsByKind()
}
