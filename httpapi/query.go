package httpapi

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/netherite-go/netherite/core"
)

// query holds the query parameters with lower-cased names: like Durable
// Functions (whose NameValueCollection ignores case), parameter names
// are case-insensitive.
type query map[string][]string

func parseQuery(r *http.Request) (query, error) {
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "Malformed query string: %v", err)
	}
	q := make(query, len(vals))
	for k, v := range vals {
		lk := strings.ToLower(k)
		q[lk] = append(q[lk], v...)
	}
	return q, nil
}

// get returns the first value of a parameter, or "".
func (q query) get(name string) string {
	if v := q[strings.ToLower(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (q query) has(name string) bool { return len(q[strings.ToLower(name)]) > 0 }

// bool parses true/false (any case); absent or empty gives def.
func (q query) bool(name string, def bool) (bool, error) {
	v := strings.TrimSpace(q.get(name))
	switch {
	case v == "":
		return def, nil
	case strings.EqualFold(v, "true"):
		return true, nil
	case strings.EqualFold(v, "false"):
		return false, nil
	}
	return false, errorf(http.StatusBadRequest, "Query parameter %s must be true or false, got %q", name, truncate(v, 100))
}

// top parses the page size: a positive integer, capped at maxTop.
func (q query) top() (int, error) {
	v := strings.TrimSpace(q.get("top"))
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, errorf(http.StatusBadRequest, "Query parameter top must be a positive integer, got %q", truncate(v, 100))
	}
	return min(n, maxTop), nil
}

// seconds parses a duration in seconds (a decimal number, as Durable
// Functions' timeout and pollingInterval), between 0 and max.
func (q query) seconds(name string, max time.Duration) (time.Duration, bool, error) {
	v := strings.TrimSpace(q.get(name))
	if v == "" {
		return 0, false, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > max.Seconds() {
		return 0, false, errorf(http.StatusBadRequest, "Query parameter %s must be a number of seconds between 0 and %g, got %q",
			name, max.Seconds(), truncate(v, 100))
	}
	return time.Duration(f * float64(time.Second)), true, nil
}

// timeLayouts are the timestamp forms accepted: ISO 8601 with or without
// a zone (UTC if none), with or without fractions, or a date.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02",
}

// time parses an ISO 8601 timestamp.
func (q query) time(name string) (time.Time, bool, error) {
	v := strings.TrimSpace(q.get(name))
	if v == "" {
		return time.Time{}, false, nil
	}
	// Python's strftime can omit the leading zeros of years before 1000;
	// Durable Functions pads them.
	if i := strings.IndexByte(v, '-'); i > 0 && i < 4 && isDigits(v[:i]) {
		v = strings.Repeat("0", 4-i) + v
	}
	candidates := []string{v}
	if strings.Contains(v, " ") {
		// An unescaped '+' of a zone offset arrives as a space.
		candidates = append(candidates, strings.ReplaceAll(v, " ", "+"))
	}
	for _, c := range candidates {
		for _, layout := range timeLayouts {
			if t, err := time.Parse(layout, c); err == nil {
				return t.UTC(), true, nil
			}
		}
	}
	return time.Time{}, false, errorf(http.StatusBadRequest,
		"Query parameter %s must be an ISO 8601 timestamp such as 2024-01-31T12:00:00Z, got %q", name, truncate(v, 100))
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// statuses parses runtimeStatus: comma-separated names, possibly repeated.
func (q query) statuses() ([]core.RuntimeStatus, error) {
	var out []core.RuntimeStatus
	for _, v := range q["runtimestatus"] {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			st, err := core.ParseRuntimeStatus(s)
			if err != nil {
				return nil, errorf(http.StatusBadRequest, "Query parameter runtimeStatus: %v", truncateErr(err))
			}
			out = append(out, st)
		}
	}
	return out, nil
}

func truncateErr(err error) string { return truncate(err.Error(), 300) }

// checkName checks an orchestrator, event, entity or operation name.
func checkName(what, name string) error {
	switch {
	case name == "":
		return errorf(http.StatusBadRequest, "The %s must not be empty", what)
	case len(name) > maxNameBytes:
		return errorf(http.StatusBadRequest, "The %s is %d bytes long, at most %d allowed", what, len(name), maxNameBytes)
	case !utf8.ValidString(name):
		return errorf(http.StatusBadRequest, "The %s %q is not valid UTF-8", what, name)
	}
	for _, c := range name {
		if unicode.IsControl(c) {
			return errorf(http.StatusBadRequest, "The %s %q contains the control character %U", what, name, c)
		}
	}
	return nil
}

// checkInstanceID checks an orchestration instance id from a path.
func checkInstanceID(id string) error {
	if err := core.ValidateInstanceID(id); err != nil {
		return &apiError{status: http.StatusBadRequest, msg: "Invalid instance ID", detail: truncateErr(err)}
	}
	return nil
}

// entityID builds and checks an entity id from a path. The key "$" means
// the empty key, as in Durable Functions.
func entityID(name, key string) (core.EntityID, error) {
	if err := checkName("entity name", name); err != nil {
		return core.EntityID{}, err
	}
	if key == "$" {
		key = ""
	}
	id := core.NewEntityID(name, key)
	if err := id.Validate(); err != nil {
		return core.EntityID{}, &apiError{status: http.StatusBadRequest, msg: "Invalid entity ID", detail: truncateErr(err)}
	}
	if err := core.ValidateInstanceID(id.String()); err != nil {
		return core.EntityID{}, &apiError{status: http.StatusBadRequest, msg: "Invalid entity ID",
			detail: fmt.Sprintf("entity %s: %v", truncate(id.String(), 80), truncateErr(err))}
	}
	return id, nil
}
