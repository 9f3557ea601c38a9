package emulator

import (
	"testing"

	"github.com/netherite-go/netherite/blobstore/blobtest"
)

// TestMain says when the tests that need Azurite are skipped.
func TestMain(m *testing.M) { blobtest.Main(m) }
