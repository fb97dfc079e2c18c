package chaos

import (
	"fmt"
	"math"
	"time"

	"github.com/anishathalye/porcupine"
)

// kvInput and kvOutput are what porcupine sees of an Op.
type kvInput struct {
	Kind          OpKind
	Key           string
	Value, Expect string
}

type kvOutput struct {
	Unknown   bool
	Read      string
	Succeeded bool
}

// kvModel is a register per key holding the last value written ("" for
// absent), with get, put and compare-and-swap. An operation of unknown
// outcome may take effect or not: it is given a return time after every
// other operation, so linearizing it last is the same as its never having
// happened, and its step accepts whatever the state allows.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(kvInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		return step(state.(string), input.(kvInput), output.(kvOutput))
	},
	Equal: func(a, b any) bool { return a.(string) == b.(string) },
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvInput), output.(kvOutput)
		res := ""
		switch {
		case out.Unknown:
			res = "unknown"
		case in.Kind == Get:
			res = fmt.Sprintf("%q", out.Read)
		case in.Kind == CAS:
			res = fmt.Sprint(out.Succeeded)
		default:
			res = "ok"
		}
		switch in.Kind {
		case Get:
			return fmt.Sprintf("get(%s) -> %s", in.Key, res)
		case Put:
			return fmt.Sprintf("put(%s, %s) -> %s", in.Key, in.Value, res)
		default:
			return fmt.Sprintf("cas(%s, %s -> %s) -> %s", in.Key, in.Expect, in.Value, res)
		}
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%q", state.(string)) },
}

func step(state string, in kvInput, out kvOutput) (bool, any) {
	switch in.Kind {
	case Get:
		return out.Read == state, state
	case Put:
		return true, in.Value
	case CAS:
		holds := in.Expect != "" && state == in.Expect
		switch {
		case out.Unknown && holds:
			return true, in.Value
		case out.Unknown:
			return true, state
		case out.Succeeded:
			return holds, in.Value
		default:
			return !holds, state
		}
	}
	return false, state
}

// porcupineOps turns the history into porcupine operations: failed reads are
// left out, unknown writes return after everything else.
func porcupineOps(ops []Op) []porcupine.Operation {
	var last time.Duration // after every call and return
	for _, op := range ops {
		last = max(last, op.Return)
	}
	out := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		if op.Outcome == Failed {
			continue
		}
		ret := int64(op.Return)
		if op.Outcome == Unknown {
			ret = min(int64(last)+1, math.MaxInt64)
		}
		out = append(out, porcupine.Operation{
			ClientId: op.Process,
			Input:    kvInput{Kind: op.Kind, Key: op.Key, Value: op.Value, Expect: op.Expect},
			Call:     int64(op.Call),
			Output:   kvOutput{Unknown: op.Outcome == Unknown, Read: op.Read, Succeeded: op.Succeeded},
			Return:   ret,
		})
	}
	return out
}
