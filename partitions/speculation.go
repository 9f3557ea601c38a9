package partitions

import "fmt"

// Speculation says what a partition may do before a step is durable
// (DESIGN §4.5).
type Speculation int

const (
	// SpeculationLocal (the default) applies a step and runs what it
	// starts at once; what another partition or a client can observe
	// leaves only once the step is durable.
	SpeculationLocal Speculation = iota
	// SpeculationNone applies a step only once it is durable (what
	// PersistStepsFirst used to say).
	SpeculationNone
	// SpeculationGlobal also lets messages to other partitions leave
	// before their step is durable (see doc/speculation.md).
	SpeculationGlobal
)

// String returns the mode's name: "local", "none" or "global".
func (s Speculation) String() string {
	switch s {
	case SpeculationLocal:
		return "local"
	case SpeculationNone:
		return "none"
	case SpeculationGlobal:
		return "global"
	}
	return fmt.Sprintf("Speculation(%d)", int(s))
}

// ParseSpeculation reads a mode's name ("" is the default, local).
func ParseSpeculation(name string) (Speculation, error) {
	switch name {
	case "", "local":
		return SpeculationLocal, nil
	case "none":
		return SpeculationNone, nil
	case "global":
		return SpeculationGlobal, nil
	}
	return 0, fmt.Errorf("unknown speculation mode %q (want none, local or global)", name)
}

// valid reports whether s is one of the modes.
func (s Speculation) valid() bool { return s >= SpeculationLocal && s <= SpeculationGlobal }
