package emulator

import (
	"strings"
	"testing"
	"time"
)

func TestVerifySAS(t *testing.T) {
	const res = "amqp://127.0.0.1:5672/hub"
	tok := SignSAS("name", "key", res, time.Hour)
	if err := verifySAS(tok, "name", "key", res, time.Now()); err != nil {
		t.Fatalf("valid token: %v", err)
	}
	if err := verifySAS(tok, "name", "key", res+"/Partitions/0", time.Now()); err != nil {
		t.Fatalf("token of the hub for a partition: %v", err)
	}
	// A token of the namespace covers its hubs, whatever the scheme.
	if err := verifySAS(SignSAS("name", "key", "sb://127.0.0.1:5672/", time.Hour), "name", "key", res, time.Now()); err != nil {
		t.Fatalf("namespace token: %v", err)
	}
	for name, c := range map[string]struct {
		tok, keyName, key, aud string
		now                    time.Time
	}{
		"wrong key":      {tok, "name", "other", res, time.Now()},
		"wrong key name": {tok, "other", "key", res, time.Now()},
		"expired":        {tok, "name", "key", res, time.Now().Add(2 * time.Hour)},
		"other hub":      {tok, "name", "key", "amqp://127.0.0.1:5672/hub2", time.Now()},
		"not a token":    {"Bearer x", "name", "key", res, time.Now()},
		"missing sig":    {"SharedAccessSignature sr=a&se=1&skn=name", "name", "key", res, time.Now()},
		"tampered":       {strings.Replace(tok, "se=", "se=9", 1), "name", "key", res, time.Now()},
	} {
		err := verifySAS(c.tok, c.keyName, c.key, c.aud, c.now)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), "key") && strings.Contains(err.Error(), c.key) && c.key != "key" {
			t.Errorf("%s: the error shows the key: %v", name, err)
		}
	}
}
