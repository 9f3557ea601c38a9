package blobstore_test

import (
	"testing"

	"github.com/netherite-go/netherite/blobstore/blobtest"
)

func TestMain(m *testing.M) { blobtest.Main(m) }
