package main

import (
	"reflect"
	"testing"
)

func TestParseCounts(t *testing.T) {
	got, err := parseCounts("1, 3,2,1")
	if err != nil || !reflect.DeepEqual(got, []int{1, 3, 2, 1}) {
		t.Errorf("parseCounts: %v, %v", got, err)
	}
	for _, bad := range []string{"", "1,0", "2,x", "-1"} {
		if _, err := parseCounts(bad); err == nil {
			t.Errorf("parseCounts(%q) accepted", bad)
		}
	}
}
