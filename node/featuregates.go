package node

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Feature gates of etcd 3.6 (--feature-gates), with its names, stages and
// defaults, so that a command line written for etcd 3.6 parses here.
const (
	GateInitialCorruptCheck          = "InitialCorruptCheck"
	GateCompactHashCheck             = "CompactHashCheck"
	GateLeaseCheckpoint              = "LeaseCheckpoint"
	GateLeaseCheckpointPersist       = "LeaseCheckpointPersist"
	GateSetMemberLocalAddr           = "SetMemberLocalAddr"
	GateStopGRPCServiceOnDefrag      = "StopGRPCServiceOnDefrag"
	GateTxnModeWriteWithSharedBuffer = "TxnModeWriteWithSharedBuffer"

	gateAllAlpha = "AllAlpha"
	gateAllBeta  = "AllBeta"
)

type gateStage string

const (
	stageAlpha gateStage = "ALPHA"
	stageBeta  gateStage = "BETA"
)

type gateSpec struct {
	stage gateStage
	def   bool
	// refusal, when set, is why troupe cannot run with the gate on.
	refusal string
}

// gateSpecs are etcd 3.6.8's server feature gates. The two All* gates set
// every gate of their stage that is not given explicitly.
var gateSpecs = map[string]gateSpec{
	gateAllAlpha:                     {stage: stageAlpha},
	gateAllBeta:                      {stage: stageBeta},
	GateCompactHashCheck:             {stage: stageAlpha},
	GateInitialCorruptCheck:          {stage: stageAlpha},
	GateLeaseCheckpoint:              {stage: stageAlpha},
	GateLeaseCheckpointPersist:       {stage: stageAlpha},
	GateSetMemberLocalAddr:           {stage: stageAlpha, refusal: "troupe's peers talk over protoactor remote, which picks its own local address"},
	GateStopGRPCServiceOnDefrag:      {stage: stageAlpha, refusal: "not supported by troupe yet: its gRPC health service keeps serving during a defragmentation"},
	GateTxnModeWriteWithSharedBuffer: {stage: stageBeta, def: true},
}

// FeatureGates is the value of --feature-gates: "Gate=true,Gate2=false".
// It parses as etcd 3.6's (k8s-style) feature gate does, with its errors,
// and remembers only the gates given (and those an All* gate filled in),
// which is what etcd compares the --experimental-* flags against.
type FeatureGates struct {
	enabled map[string]bool
}

// Enabled reports whether gate is on: as given, else its default.
func (g *FeatureGates) Enabled(gate string) bool {
	if v, ok := g.enabled[gate]; ok {
		return v
	}
	return gateSpecs[gate].def
}

// String lists the gates given, sorted, as "Gate=true,Gate2=false".
func (g *FeatureGates) String() string {
	if g == nil {
		return ""
	}
	pairs := make([]string, 0, len(g.enabled))
	for k, v := range g.enabled {
		pairs = append(pairs, k+"="+strconv.FormatBool(v))
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}

// Set parses "Gate=bool,..." and adds it to the gates already set.
func (g *FeatureGates) Set(value string) error {
	m := map[string]bool{}
	for _, s := range strings.Split(value, ",") {
		if s == "" {
			continue
		}
		k, v, ok := strings.Cut(s, "=")
		k = strings.TrimSpace(k)
		if !ok {
			return fmt.Errorf("missing bool value for %s", k)
		}
		v = strings.TrimSpace(v)
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("invalid value of %s=%s, err: %w", k, v, err)
		}
		m[k] = b
	}
	return g.setFromMap(m)
}

// setFromMap sets the gates in m; an All* gate does not override a gate
// given beside it, whatever the order.
func (g *FeatureGates) setFromMap(m map[string]bool) error {
	enabled := map[string]bool{}
	for k, v := range g.enabled {
		enabled[k] = v
	}
	for k, v := range m {
		if _, ok := gateSpecs[k]; !ok {
			return fmt.Errorf("unrecognized feature gate: %s", k)
		}
		enabled[k] = v
	}
	for _, all := range []string{gateAllAlpha, gateAllBeta} {
		v, ok := m[all]
		if !ok {
			continue
		}
		for k, spec := range gateSpecs {
			if _, given := enabled[k]; !given && spec.stage == gateSpecs[all].stage {
				enabled[k] = v
			}
		}
	}
	g.enabled = enabled
	return nil
}

// set reports whether gate was given (or filled in by an All* gate).
func (g *FeatureGates) set(gate string) bool {
	_, ok := g.enabled[gate]
	return ok
}

// validate refuses a gate troupe cannot honour, and etcd's one rule
// between gates.
func (g *FeatureGates) validate() error {
	for _, name := range sortedGates() {
		spec := gateSpecs[name]
		if spec.refusal != "" && g.Enabled(name) {
			return fmt.Errorf("--feature-gates=%s=true: %s", name, spec.refusal)
		}
	}
	if g.Enabled(GateLeaseCheckpointPersist) && !g.Enabled(GateLeaseCheckpoint) {
		return fmt.Errorf("enabling feature gate %s requires enabling feature gate %s", GateLeaseCheckpointPersist, GateLeaseCheckpoint)
	}
	return nil
}

func sortedGates() []string {
	names := make([]string, 0, len(gateSpecs))
	for k := range gateSpecs {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// featureGatesUsage is etcd's help text of --feature-gates.
func featureGatesUsage() string {
	lines := []string{"A set of key=value pairs that describe server level feature gates for alpha/experimental features. Options are:"}
	for _, name := range sortedGates() {
		s := gateSpecs[name]
		lines = append(lines, fmt.Sprintf("%s=true|false (%s - default=%t)", name, s.stage, s.def))
	}
	return strings.Join(lines, "\n")
}
