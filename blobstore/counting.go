package blobstore

// RequestsByKind reports the HTTP requests (attempts) the account has
// sent by kind: "blob read", "blob write", "blob lease", "blob other"
// (see package storagecount); zero counts are left out.
func (a *Account) RequestsByKind() map[string]int64 { return a.requests.ByKind() }
