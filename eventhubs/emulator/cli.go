package emulator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
)

// Run is the command line of the emulator (cmd/eventhubs-emulator and
// `netherite eventhubs-emulator`): it runs until ctx ends and returns the
// exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("eventhubs-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `usage: eventhubs-emulator [flags]

A local Event Hubs for development and tests: the azeventhubs client connects
with the connection string it prints (UseDevelopmentEmulator=true).

flags:
`)
		fs.PrintDefaults()
	}
	configPath := fs.String("config", "", "Config.json in the format of Microsoft's Event Hubs emulator (hubs to create)")
	addr := fs.String("addr", "127.0.0.1:5672", "AMQP listen address")
	healthAddr := fs.String("health-addr", "127.0.0.1:5300", "HTTP listen address of /health and the admin API")
	dataDir := fs.String("data", "", "keep events on disk in this directory (default: in memory)")
	strict := fs.Bool("strict-auth", false, "verify SAS tokens against the key instead of accepting any")
	keyName := fs.String("key-name", DefaultKeyName, "shared access key name")
	key := fs.String("key", DefaultKey, "shared access key")
	retentionMB := fs.Int64("retention-mb", DefaultRetentionBytes>>20, "default size limit of a partition's retained events, MiB")
	verbose := fs.Bool("v", false, "log every hub change and connection")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "eventhubs-emulator: unexpected arguments %q\n", fs.Args())
		return 2
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg := Config{
		Addr: *addr, AdminAddr: *healthAddr, DataDir: *dataDir, StrictAuth: *strict,
		KeyName: *keyName, Key: *key, RetentionBytes: *retentionMB << 20, Logger: logger,
	}
	if *configPath != "" {
		hubs, err := ParseConfigFile(*configPath)
		if err != nil {
			fmt.Fprintln(stderr, "eventhubs-emulator:", err)
			return 1
		}
		cfg.Hubs = hubs
	}
	e, err := Start(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(stderr, "eventhubs-emulator:", err)
		return 1
	}
	where := "in memory"
	if *dataDir != "" {
		where = "in " + *dataDir
	}
	fmt.Fprintf(stdout, "event hubs emulator: AMQP on %s, admin and /health on %s, events %s, hubs %v\n", e.Addr, e.AdminURL, where, e.Hubs())
	if cfg.Key == DefaultKey {
		fmt.Fprintf(stdout, "export NETHERITE_EVENTHUBS='%s'\n", e.ConnectionString)
		fmt.Fprintf(stdout, "export NETHERITE_EVENTHUBS_ADMIN='%s'\n", e.AdminURL)
	} else {
		// A key of one's own is a secret: it is not printed.
		fmt.Fprintf(stdout, "connection string: Endpoint=sb://%s;SharedAccessKeyName=%s;SharedAccessKey=<the -key value>;UseDevelopmentEmulator=true\n", clientAddr(e.Addr), cfg.KeyName)
	}
	<-ctx.Done()
	if err := e.Stop(); err != nil {
		fmt.Fprintln(stderr, "eventhubs-emulator: stop:", err)
		return 1
	}
	return 0
}
