package httpapi

import (
	"net/http"
	"strings"
	"testing"
)

func TestEntities(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Options{Registry: testRegistry()})
	// Signal: 202, no body; names are case-insensitive.
	r := e.expect(e.postJSON("/entities/Counter/c1?op=add", "5"), http.StatusAccepted)
	if len(r.body) != 0 {
		t.Errorf("body %q", r.body)
	}
	e.waitEntity("/entities/counter/c1", http.StatusOK, "5")
	e.expect(e.req(http.MethodPost, "/entities/COUNTER/c1?op=add", []byte(" 2 "), "Content-Type", "application/json"), http.StatusAccepted)
	e.waitEntity("/entities/Counter/c1", http.StatusOK, "7")
	// No body: an operation without input.
	e.expect(e.req(http.MethodPost, "/entities/Counter/c1?op=reset", nil), http.StatusAccepted)
	e.waitEntity("/entities/Counter/c1", http.StatusOK, "0")
	// A body that is not JSON is the input as a string (Counter rejects
	// it; the state stays).
	e.expect(e.req(http.MethodPost, "/entities/Counter/c1?op=add", []byte("three"), "Content-Type", "text/plain"), http.StatusAccepted)

	// The empty key is written "$".
	e.expect(e.postJSON("/entities/Counter/$?op=add", "1"), http.StatusAccepted)
	e.waitEntity("/entities/Counter/$", http.StatusOK, "1")
	if n, ok := e.entityState("Counter", ""); !ok || n != 1 {
		t.Errorf("empty-key counter %d %v", n, ok)
	}
	// A key with a slash, escaped.
	e.expect(e.postJSON("/entities/Counter/a%2Fb?op=add", "4"), http.StatusAccepted)
	e.waitEntity("/entities/Counter/a%2Fb", http.StatusOK, "4")

	// Errors.
	e.expect(e.postJSON("/entities/Counter/c1", "1"), http.StatusBadRequest)            // no op
	e.expect(e.postJSON("/entities/Counter/c1?op=add", "{nope"), http.StatusBadRequest) // bad JSON
	e.expect(e.postJSON("/entities/Nobody/c1?op=add", "1"), http.StatusNotFound)        // unregistered
	e.expect(e.postJSON("/entities/Coun@ter/c1?op=add", "1"), http.StatusBadRequest)    // '@' in name
	e.expect(e.postJSON("/entities/Counter/c%00?op=add", "1"), http.StatusBadRequest)   // control character
	e.expect(e.postJSON("/entities/Counter/c1?op=a%0Ab", "1"), http.StatusBadRequest)   // control character in op
	e.expect(e.postJSON("/entities/Counter/"+strings.Repeat("k", 300)+"?op=add", "1"), http.StatusBadRequest)
	e.expect(e.get("/entities/Counter/never-signalled"), http.StatusNotFound)
	e.expect(e.req(http.MethodPut, "/entities/Counter/c1", nil), http.StatusMethodNotAllowed)
	e.expect(e.req(http.MethodPost, "/entities/Counter", nil), http.StatusMethodNotAllowed)
	e.expect(e.get("/entities/Counter/c1/extra"), http.StatusNotFound)

	// Delete: signals "delete" (the Counter implements it), 202; 404 for
	// an entity without state.
	e.expect(e.req(http.MethodDelete, "/entities/Counter/a%2Fb", nil), http.StatusAccepted)
	e.waitEntity("/entities/Counter/a%2Fb", http.StatusNotFound, "")
	e.expect(e.req(http.MethodDelete, "/entities/Counter/a%2Fb", nil), http.StatusNotFound)
}

func TestListEntities(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Options{})
	for _, k := range []string{"cats", "dogs", "mice"} {
		e.expect(e.postJSON("/entities/Counter/"+k+"?op=add", "3"), http.StatusAccepted)
	}
	e.expect(e.postJSON("/entities/Account/acc?op=deposit", "10"), http.StatusAccepted)
	for _, k := range []string{"cats", "dogs", "mice"} {
		e.waitEntity("/entities/Counter/"+k, http.StatusOK, "3")
	}
	e.waitEntity("/entities/Account/acc", http.StatusOK, "10")

	var all []map[string]any
	e.expect(e.get("/entities"), http.StatusOK).decode(t, &all)
	if len(all) != 4 {
		t.Fatalf("entities %v", all)
	}
	for _, m := range all {
		id := m["entityId"].(map[string]any)
		if id["name"] == "" || id["key"] == "" || !eventTimeRE.MatchString(m["lastOperationTime"].(string)) {
			t.Errorf("entity %v", m)
		}
		if _, ok := m["state"]; ok {
			t.Errorf("state without fetchState: %v", m)
		}
	}
	r := e.expect(e.get("/entities/counter?fetchState=true"), http.StatusOK)
	if !strings.HasPrefix(string(r.body), `[{"entityId":{"key":"cats","name":"counter"},"lastOperationTime":"`) ||
		!strings.Contains(string(r.body), `"state":3}`) {
		t.Errorf("entity JSON shape: %s", r.body)
	}
	var counters []map[string]any
	r.decode(t, &counters)
	if len(counters) != 3 {
		t.Fatalf("counters %v", counters)
	}
	for _, m := range counters {
		if m["entityId"].(map[string]any)["name"] != "counter" || m["state"] != float64(3) {
			t.Errorf("counter %v", m)
		}
	}
	// Paging.
	var keys []string
	token := ""
	for i := 0; ; i++ {
		hdr := []string{}
		if token != "" {
			hdr = []string{"x-ms-continuation-token", token}
		}
		r := e.expect(e.req(http.MethodGet, "/entities/Counter?top=2", nil, hdr...), http.StatusOK)
		var page []map[string]any
		r.decode(t, &page)
		if len(page) > 2 {
			t.Fatalf("page %v", page)
		}
		for _, m := range page {
			keys = append(keys, m["entityId"].(map[string]any)["key"].(string))
		}
		if token = r.hdr.Get("x-ms-continuation-token"); token == "" {
			break
		}
		if i > 5 {
			t.Fatal("too many pages")
		}
	}
	if strings.Join(keys, ",") != "cats,dogs,mice" {
		t.Errorf("paged keys %v", keys)
	}
	var none []map[string]any
	e.expect(e.get("/entities?lastOperationTimeFrom=2999-01-01T00:00:00Z"), http.StatusOK).decode(t, &none)
	if len(none) != 0 {
		t.Errorf("future filter %v", none)
	}
	e.expect(e.get("/entities?lastOperationTimeTo=2000-01-01"), http.StatusOK).decode(t, &none)
	if len(none) != 0 {
		t.Errorf("past filter %v", none)
	}
	for _, bad := range []string{"fetchState=y", "top=0", "lastOperationTimeFrom=now"} {
		e.expect(e.get("/entities?"+bad), http.StatusBadRequest)
	}
	e.expect(e.req(http.MethodGet, "/entities", nil, "x-ms-continuation-token", "%%%"), http.StatusBadRequest)
	e.expect(e.req(http.MethodDelete, "/entities", nil), http.StatusMethodNotAllowed)
}
