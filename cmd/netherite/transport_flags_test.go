package main

import (
	"reflect"
	"testing"
)

func TestParsePartitionList(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int
		err  bool
	}{
		{in: "", want: nil},
		{in: "all", want: nil},
		{in: "none", want: []int{}},
		{in: "0-5", want: []int{0, 1, 2, 3, 4, 5}},
		{in: "6-11", want: []int{6, 7, 8, 9, 10, 11}},
		{in: "3, 0,7-8", want: []int{0, 3, 7, 8}},
		{in: "5-3", err: true},
		{in: "1,1", err: true},
		{in: "0-2,2", err: true},
		{in: "x", err: true},
		{in: "-1", err: true},
	} {
		got, err := parsePartitionList(c.in)
		if (err != nil) != c.err || (!c.err && !reflect.DeepEqual(got, c.want)) {
			t.Errorf("parsePartitionList(%q) = %v, %v; want %v (error %v)", c.in, got, err, c.want, c.err)
		}
	}
}
