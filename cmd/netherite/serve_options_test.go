package main

import (
	"flag"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The option mapping of `netherite serve`: flags, and with -functions the
// app settings; on Event Hubs a Functions host is elastic by default.
func TestServeOptions(t *testing.T) {
	const eh = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0"
	const az = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0;EndpointSuffix=core.windows.net"
	onEventHubs := map[string]string{"EventHubsConnection": eh, "AzureWebJobsStorage": az, "FUNCTIONS_CUSTOMHANDLER_PORT": "3456"}
	inProcess := map[string]string{"EventHubsConnection": "SingleHost", "AzureWebJobsStorage": az}
	type want struct {
		elastic bool
		owned   string // fmt of Options.Partitions: "<nil>" for all
		addr    string
		err     string
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want want
	}{
		{"plain serve", nil, nil, want{owned: "[]int(nil)", addr: "127.0.0.1:7071"}},
		{"plain serve -elastic", []string{"-elastic", "-host-id", "h1", "-load-report-interval", "500ms"}, nil,
			want{elastic: true, owned: "[]int(nil)", addr: "127.0.0.1:7071"}},
		{"functions on Event Hubs: elastic", []string{"-functions"}, onEventHubs, want{elastic: true, owned: "[]int(nil)", addr: ":3456"}},
		{"functions on Event Hubs with -partitions-owned: static", []string{"-functions", "-partitions-owned", "0-5"}, onEventHubs,
			want{owned: "[]int{0, 1, 2, 3, 4, 5}", addr: ":3456"}},
		{"functions on Event Hubs with -elastic=false: static", []string{"-functions", "-elastic=false"}, onEventHubs,
			want{owned: "[]int(nil)", addr: ":3456"}},
		{"functions on Event Hubs, report interval allowed", []string{"-functions", "-load-report-interval", "1s"}, onEventHubs,
			want{elastic: true, owned: "[]int(nil)", addr: ":3456"}},
		{"functions in process: static", []string{"-functions"}, inProcess, want{owned: "[]int(nil)", addr: "127.0.0.1:7071"}},
		{"functions in process, -transport Event Hubs: elastic", []string{"-functions", "-transport", eh}, inProcess,
			want{elastic: true, owned: "[]int(nil)", addr: "127.0.0.1:7071"}},
		{"-elastic with -partitions-owned", []string{"-elastic", "-partitions-owned", "0-3"}, nil, want{err: "excludes -partitions-owned"}},
		{"-functions -elastic with -partitions-owned", []string{"-functions", "-elastic", "-partitions-owned", "0-3"}, onEventHubs,
			want{err: "excludes -partitions-owned"}},
		{"report interval without -elastic", []string{"-load-report-interval", "1s"}, nil, want{err: "apply to -elastic only"}},
		{"functions in process, report interval", []string{"-functions", "-load-report-interval", "1s"}, inProcess, want{err: "apply to -elastic only"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			sf := addServeFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			opts, addr, err := sf.options(fs, func(k string) string { return tc.env[k] })
			if tc.want.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want.err) {
					t.Fatalf("error %v, want one with %q", err, tc.want.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if opts.Elastic != tc.want.elastic || fmtPartitions(opts.Partitions) != tc.want.owned || addr != tc.want.addr {
				t.Fatalf("elastic %v partitions %s addr %q; want %+v", opts.Elastic, fmtPartitions(opts.Partitions), addr, tc.want)
			}
			if tc.env != nil && strings.Contains(strings.Join(tc.args, " "), "-functions") && opts.Storage != az {
				t.Errorf("storage %q: want the app's AzureWebJobsStorage", opts.Storage)
			}
		})
	}
	// The elastic settings reach the options.
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	sf := addServeFlags(fs)
	if err := fs.Parse([]string{"-elastic", "-host-id", "vm7", "-load-report-interval", "300ms", "-host-timeout", "3s"}); err != nil {
		t.Fatal(err)
	}
	opts, _, err := sf.options(fs, func(string) string { return "" })
	if err != nil || opts.HostID != "vm7" || opts.LoadReportInterval != 300*time.Millisecond || opts.HostTimeout != 3*time.Second {
		t.Fatalf("%v: host %q interval %v timeout %v", err, opts.HostID, opts.LoadReportInterval, opts.HostTimeout)
	}
}

func fmtPartitions(ps []int) string {
	if ps == nil {
		return "[]int(nil)"
	}
	var b strings.Builder
	b.WriteString("[]int{")
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(p))
	}
	b.WriteString("}")
	return b.String()
}
