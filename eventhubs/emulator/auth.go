package emulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// verifySAS checks a shared access signature token
// ("SharedAccessSignature sr=...&sig=...&se=...&skn=...") against the key:
// the key name, the HMAC-SHA256 signature of "<sr>\n<se>", the expiry, and
// that the signed resource covers audience (when audience is not empty).
// Errors never include the signature or the key.
func verifySAS(token, keyName, key, audience string, now time.Time) error {
	rest, ok := strings.CutPrefix(strings.TrimSpace(token), "SharedAccessSignature ")
	if !ok {
		return errors.New("not a SharedAccessSignature token")
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(rest, "&") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return errors.New("malformed SharedAccessSignature token")
		}
		fields[k] = v
	}
	sr, sig, se, skn := fields["sr"], fields["sig"], fields["se"], fields["skn"]
	if sr == "" || sig == "" || se == "" || skn == "" {
		return errors.New("SharedAccessSignature token lacks sr, sig, se or skn")
	}
	if skn != keyName {
		return fmt.Errorf("unknown key name %q", skn)
	}
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(sr + "\n" + se))
	want := mac.Sum(nil)
	sigText, err := url.QueryUnescape(sig)
	if err != nil {
		return errors.New("malformed signature")
	}
	got, err := base64.StdEncoding.DecodeString(sigText)
	if err != nil || !hmac.Equal(got, want) {
		return errors.New("invalid signature")
	}
	exp, err := strconv.ParseInt(se, 10, 64)
	if err != nil {
		return errors.New("malformed expiry")
	}
	if now.Unix() >= exp {
		return fmt.Errorf("token expired at %s", time.Unix(exp, 0).UTC().Format(time.RFC3339))
	}
	if audience != "" {
		res, err := url.QueryUnescape(sr)
		if err != nil {
			return errors.New("malformed resource")
		}
		if a, r := resourcePath(audience), resourcePath(res); a != r && !strings.HasPrefix(a, r+"/") {
			return fmt.Errorf("token for %s does not cover %s", res, audience)
		}
	}
	return nil
}

// resourcePath normalizes a resource URI for comparison: lower case,
// without scheme and trailing slash ("amqp://host:5672/hub" and
// "sb://host:5672/hub/" compare equal).
func resourcePath(s string) string {
	s = strings.ToLower(s)
	if _, after, ok := strings.Cut(s, "://"); ok {
		s = after
	}
	return strings.TrimSuffix(s, "/")
}

// SignSAS returns a SharedAccessSignature token for resource (as the
// Azure SDKs make it), valid for ttl. For tests and the admin API's callers.
func SignSAS(keyName, key, resource string, ttl time.Duration) string {
	sr := strings.ToLower(url.QueryEscape(resource))
	se := strconv.FormatInt(time.Now().Add(ttl).Unix(), 10)
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(sr + "\n" + se))
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return "SharedAccessSignature sr=" + sr + "&sig=" + sig + "&se=" + se + "&skn=" + keyName
}
