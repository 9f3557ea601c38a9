package durable

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// OrchestratorFunc is an orchestrator in its untyped form: it reads its
// input with ctx.GetInput and returns its output.
type OrchestratorFunc func(ctx OrchestrationContext) (any, error)

// ActivityFunc is an activity in its untyped form.
type ActivityFunc func(ctx ActivityContext) (any, error)

// EntityFunc runs one operation on an entity. It dispatches on
// ctx.Operation(); the state is read and written through ctx.
type EntityFunc func(ctx EntityContext) error

// Registry holds the named orchestrators, activities and entities of an
// application, and the converter for their payloads. Register everything
// before handing the registry to a host; lookups are safe for concurrent
// use.
type Registry struct {
	mu            sync.RWMutex
	orchestrators map[string]OrchestratorFunc
	activities    map[string]ActivityFunc
	entities      map[string]EntityFunc
	converter     Converter
}

// RegistryOption configures a registry.
type RegistryOption func(*Registry)

// WithConverter sets the payload converter (JSON by default).
func WithConverter(c Converter) RegistryOption {
	return func(r *Registry) { r.converter = c }
}

// NewRegistry returns an empty registry.
func NewRegistry(opts ...RegistryOption) *Registry {
	r := &Registry{
		orchestrators: map[string]OrchestratorFunc{},
		activities:    map[string]ActivityFunc{},
		entities:      map[string]EntityFunc{},
		converter:     JSONConverter{},
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Converter returns the payload converter of the registry.
func (r *Registry) Converter() Converter { return r.converter }

func checkName(kind, name string) error {
	if strings.TrimSpace(name) == "" {
		return fmt.Errorf("durable: register %s: empty name", kind)
	}
	return nil
}

// AddOrchestrator registers an untyped orchestrator.
func (r *Registry) AddOrchestrator(name string, fn OrchestratorFunc) error {
	return add(r, r.orchestrators, "orchestrator", name, fn, fn == nil)
}

// AddActivity registers an untyped activity.
func (r *Registry) AddActivity(name string, fn ActivityFunc) error {
	return add(r, r.activities, "activity", name, fn, fn == nil)
}

// AddEntity registers an entity. Entity names are case-insensitive.
func (r *Registry) AddEntity(name string, fn EntityFunc) error {
	return add(r, r.entities, "entity", strings.ToLower(name), fn, fn == nil)
}

func add[F any](r *Registry, m map[string]F, kind, name string, fn F, isNil bool) error {
	if err := checkName(kind, name); err != nil {
		return err
	}
	if isNil {
		return fmt.Errorf("durable: register %s %q: nil function", kind, name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := m[name]; dup {
		return fmt.Errorf("durable: register %s %q: already registered", kind, name)
	}
	m[name] = fn
	return nil
}

func (r *Registry) orchestrator(name string) (OrchestratorFunc, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	fn, ok := r.orchestrators[name]
	return fn, ok
}

func (r *Registry) activity(name string) (ActivityFunc, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	fn, ok := r.activities[name]
	return fn, ok
}

func (r *Registry) entity(name string) (EntityFunc, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	fn, ok := r.entities[strings.ToLower(name)]
	return fn, ok
}

// Names lists the registered names of one kind ("orchestrator", "activity"
// or "entity"), sorted.
func (r *Registry) Names(kind string) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var keys []string
	switch kind {
	case "orchestrator":
		keys = mapKeys(r.orchestrators)
	case "activity":
		keys = mapKeys(r.activities)
	case "entity":
		keys = mapKeys(r.entities)
	}
	sort.Strings(keys)
	return keys
}

func mapKeys[F any](m map[string]F) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

func notRegistered(r *Registry, kind, name string) string {
	names := r.Names(kind)
	if len(names) == 0 {
		return fmt.Sprintf("%s %q is not registered (no %ss are registered)", kind, name, kind)
	}
	return fmt.Sprintf("%s %q is not registered (registered: %s)", kind, name, strings.Join(names, ", "))
}

// InvalidInputError reports an input payload that does not decode into
// the type a function expects.
type InvalidInputError struct {
	Kind, Name string
	Err        error
}

func (e *InvalidInputError) Error() string {
	return fmt.Sprintf("invalid input for %s %q: %v", e.Kind, e.Name, e.Err)
}

func (e *InvalidInputError) Unwrap() error { return e.Err }

// Orchestrator is a typed reference to a registered orchestrator.
type Orchestrator[I, O any] struct{ Name string }

// Activity is a typed reference to a registered activity.
type Activity[I, O any] struct{ Name string }

// RegisterOrchestrator registers a typed orchestrator and returns a typed
// reference for calling it as a sub-orchestration. It panics if the name is
// empty or taken, like http.Handle: registration happens at start-up.
func RegisterOrchestrator[I, O any](r *Registry, name string, fn func(ctx OrchestrationContext, input I) (O, error)) Orchestrator[I, O] {
	err := r.AddOrchestrator(name, func(ctx OrchestrationContext) (any, error) {
		var in I
		if err := ctx.GetInput(&in); err != nil {
			return nil, &InvalidInputError{Kind: "orchestrator", Name: name, Err: err}
		}
		return fn(ctx, in)
	})
	if err != nil {
		panic(err)
	}
	return Orchestrator[I, O]{Name: name}
}

// RegisterActivity registers a typed activity and returns a typed reference
// for calling it. It panics if the name is empty or taken.
func RegisterActivity[I, O any](r *Registry, name string, fn func(ctx ActivityContext, input I) (O, error)) Activity[I, O] {
	err := r.AddActivity(name, func(ctx ActivityContext) (any, error) {
		var in I
		if err := ctx.GetInput(&in); err != nil {
			return nil, &InvalidInputError{Kind: "activity", Name: name, Err: err}
		}
		return fn(ctx, in)
	})
	if err != nil {
		panic(err)
	}
	return Activity[I, O]{Name: name}
}

// RegisterEntity registers an entity. It panics if the name is empty or
// taken.
func RegisterEntity(r *Registry, name string, fn EntityFunc) {
	if err := r.AddEntity(name, fn); err != nil {
		panic(err)
	}
}

// Call schedules the activity from an orchestration.
func (a Activity[I, O]) Call(ctx OrchestrationContext, input I, opts ...CallOption) Future[O] {
	return Future[O]{ctx.CallActivity(a.Name, input, opts...)}
}

// Call starts the orchestrator as a sub-orchestration.
func (o Orchestrator[I, O]) Call(ctx OrchestrationContext, input I, opts ...CallOption) Future[O] {
	return Future[O]{ctx.CallSubOrchestrator(o.Name, input, opts...)}
}
