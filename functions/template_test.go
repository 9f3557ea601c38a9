package functions

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

type hostJSON struct {
	Version       string `json:"version"`
	CustomHandler *struct {
		Description struct {
			DefaultExecutablePath string   `json:"defaultExecutablePath"`
			Arguments             []string `json:"arguments"`
		} `json:"description"`
		EnableForwardingHttpRequest bool `json:"enableForwardingHttpRequest"`
	} `json:"customHandler"`
	Extensions struct {
		HTTP struct {
			RoutePrefix *string `json:"routePrefix"`
		} `json:"http"`
	} `json:"extensions"`
	ExtensionBundle json.RawMessage `json:"extensionBundle"`
}

type functionJSON struct {
	Bindings []struct {
		Type      string   `json:"type"`
		Direction string   `json:"direction"`
		Name      string   `json:"name"`
		AuthLevel string   `json:"authLevel"`
		Methods   []string `json:"methods"`
		Route     string   `json:"route"`
	} `json:"bindings"`
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// functionDirs lists the function folders (those with a function.json).
func functionDirs(t *testing.T, root string) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(root, "*", "function.json"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range matches {
		names = append(names, filepath.Base(filepath.Dir(m)))
	}
	sort.Strings(names)
	return names
}

// TestTemplates checks the templates and the sample app against the
// adapter: a custom handler running `netherite serve -functions`, HTTP
// triggers whose public routes the default prefixes map into the app, and
// the output binding the adapter writes.
func TestTemplates(t *testing.T) {
	want := []string{"DurableEntities", "DurableInstances", "DurableOrchestrators", "DurableScale", "Healthz"}
	h := NewHandler(http.NotFoundHandler(), Options{}).(*handler)
	for _, root := range []string{"template", "sample"} {
		t.Run(root, func(t *testing.T) {
			var host hostJSON
			readJSON(t, filepath.Join(root, "host.json"), &host)
			if host.Version != "2.0" || host.CustomHandler == nil {
				t.Fatalf("host.json: version %q, customHandler %v", host.Version, host.CustomHandler)
			}
			d := host.CustomHandler.Description
			if d.DefaultExecutablePath != "netherite" || len(d.Arguments) < 2 || d.Arguments[0] != "serve" || d.Arguments[1] != "-functions" {
				t.Errorf("host.json runs %q %q, want netherite serve -functions ...", d.DefaultExecutablePath, d.Arguments)
			}
			if !host.CustomHandler.EnableForwardingHttpRequest {
				t.Errorf("host.json: enableForwardingHttpRequest is off")
			}
			if host.ExtensionBundle != nil {
				t.Errorf("host.json has an extensionBundle; HTTP triggers are built into the host")
			}
			prefix := "api"
			if p := host.Extensions.HTTP.RoutePrefix; p != nil {
				prefix = *p
			}
			if got := functionDirs(t, root); !reflect.DeepEqual(got, want) {
				t.Fatalf("functions %v, want %v", got, want)
			}
			for _, name := range want {
				var fn functionJSON
				readJSON(t, filepath.Join(root, name, "function.json"), &fn)
				if len(fn.Bindings) != 2 {
					t.Fatalf("%s: %d bindings, want an HTTP trigger and an HTTP output (forwarding needs exactly those)", name, len(fn.Bindings))
				}
				in, out := fn.Bindings[0], fn.Bindings[1]
				if in.Type != "httpTrigger" || in.Direction != "in" || in.Name != "req" || in.Route == "" {
					t.Errorf("%s: trigger %+v", name, in)
				}
				if out.Type != "http" || out.Direction != "out" || out.Name != DefaultResponseBinding {
					t.Errorf("%s: output %+v", name, out)
				}
				route := strings.ToLower(strings.Trim(in.Route, "/"))
				if strings.HasPrefix(route, "admin") || strings.HasPrefix(route, "runtime/") {
					t.Errorf("%s: route %q is in the host's reserved route space", name, in.Route)
				}
				// the public path of the route, with the catch-all empty and filled
				base := "/" + prefix + "/" + strings.TrimSuffix(strings.TrimSuffix(in.Route, "{*path}"), "/")
				for _, p := range []string{base, base + "/x/y"} {
					appPath, _, ok := h.mapPath(p)
					if !ok {
						t.Errorf("%s: public path %s is not mapped", name, p)
						continue
					}
					if name == "Healthz" {
						if appPath != "/healthz" && !strings.HasPrefix(appPath, "/healthz/") {
							t.Errorf("%s: %s maps to %s", name, p, appPath)
						}
					} else if !strings.HasPrefix(appPath, "/runtime/webhooks/durabletask/") {
						t.Errorf("%s: %s maps to %s, outside the durable API", name, p, appPath)
					}
				}
			}
		})
	}

	// the sample ships the template
	for _, f := range append([]string{"host.json"}, func() []string {
		var fs []string
		for _, n := range want {
			fs = append(fs, filepath.Join(n, "function.json"))
		}
		return fs
	}()...) {
		a, _ := os.ReadFile(filepath.Join("template", f))
		b, _ := os.ReadFile(filepath.Join("sample", f))
		if !bytes.Equal(a, b) {
			t.Errorf("sample/%s differs from template/%s", f, f)
		}
	}
}

// TestSampleSettings checks that the sample's local settings are those of a
// custom handler, define every %VARIABLE% host.json passes to netherite,
// and are valid for LoadSettings.
func TestSampleSettings(t *testing.T) {
	var ls struct {
		IsEncrypted bool              `json:"IsEncrypted"`
		Values      map[string]string `json:"Values"`
	}
	readJSON(t, filepath.Join("sample", "local.settings.json.example"), &ls)
	if ls.Values["FUNCTIONS_WORKER_RUNTIME"] != "Custom" {
		t.Errorf("FUNCTIONS_WORKER_RUNTIME %q, want Custom", ls.Values["FUNCTIONS_WORKER_RUNTIME"])
	}
	host, err := os.ReadFile(filepath.Join("sample", "host.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`%([A-Za-z0-9_]+)%`).FindAllStringSubmatch(string(host), -1) {
		if ls.Values[m[1]] == "" {
			t.Errorf("host.json uses %%%s%%, which local.settings.json.example does not set", m[1])
		}
	}
	s, err := LoadSettings(func(k string) string { return ls.Values[k] })
	if err != nil {
		t.Fatal(err)
	}
	if s.TaskHub == "" || s.PartitionCount == 0 || s.EventHubsConnection == "" {
		t.Errorf("sample settings %+v", s)
	}
}
