package main

import (
	"reflect"
	"testing"

	"github.com/netherite-go/netherite"
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

func TestIsEventHubsConnection(t *testing.T) {
	for s, want := range map[string]bool{
		"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=v":                 true,
		"Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true": true,
		"myns.servicebus.windows.net":        true,
		"sb://myns.servicebus.windows.net/":  true,
		"memory":                             false,
		"":                                   false,
		"UseDevelopmentStorage=true":         false,
		"https://acct.blob.core.windows.net": false,
		"SingleHost":                         false,
	} {
		if got := netherite.IsEventHubsConnection(s); got != want {
			t.Errorf("IsEventHubsConnection(%q) = %v, want %v", s, got, want)
		}
	}
}
