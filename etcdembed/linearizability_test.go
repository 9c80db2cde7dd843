package etcdembed

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var (
	linDuration = flag.Duration("etcdembed.lin-duration", 0, "duration of the linearizability workload (default 8s with -short, else 20s)")
	linClients  = flag.Int("etcdembed.lin-clients", 6, "concurrent clients of the linearizability workload")
	linSeed     = flag.Uint64("etcdembed.lin-seed", 0, "seed of the fault schedule and workload (0: time-based; printed)")
)

// Register operations on one key, for porcupine.
type opKind int

const (
	opGet opKind = iota
	opPut
	opCAS
)

type regInput struct {
	kind   opKind
	key    string
	value  string // put/cas: the value written (unique in the run)
	expect string // cas: the value compared against ("" = key absent)
}

type regOutput struct {
	value   string // get: the value read ("" = absent)
	ok      bool   // cas: whether the comparison held
	unknown bool   // put/cas ended in error: it may or may not have taken effect
}

// registerModel is a map of registers partitioned by key; the state of a
// partition is the key's value ("" = absent; the workload never writes "").
var registerModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(regInput).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(string), input.(regInput), output.(regOutput)
		switch in.kind {
		case opGet:
			return out.value == s, s
		case opPut:
			return true, in.value
		default: // CAS
			if out.unknown {
				// Linearized here, it applied iff the comparison held;
				// if it never applied it linearizes after everything.
				if s == in.expect {
					return true, in.value
				}
				return true, s
			}
			if out.ok {
				return s == in.expect, in.value
			}
			return s != in.expect, s
		}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(regInput), output.(regOutput)
		switch in.kind {
		case opGet:
			return fmt.Sprintf("get(%s) -> %q", in.key, out.value)
		case opPut:
			return fmt.Sprintf("put(%s, %q) unknown=%v", in.key, in.value, out.unknown)
		default:
			return fmt.Sprintf("cas(%s, %q -> %q) ok=%v unknown=%v", in.key, in.expect, in.value, out.ok, out.unknown)
		}
	},
}

// history collects operations from concurrent clients.
type history struct {
	mu  sync.Mutex
	t0  time.Time
	ops []porcupine.Operation
}

func (h *history) now() int64 { return int64(time.Since(h.t0)) }

func (h *history) add(client int, in regInput, out regOutput, call, ret int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret})
}

type linStats struct {
	ops, unknown, failedReads, faults, acked atomic.Int64
}

// runClient issues random get/put/cas operations on keys until ctx ends, and
// unique "ack" puts whose acknowledgement it remembers.
func runClient(ctx context.Context, id int, cli *clientv3.Client, h *history, seed uint64, keys []string, st *linStats, acked *sync.Map) {
	rng := rand.New(rand.NewPCG(seed, uint64(id)))
	last := map[string]string{}
	for n := 0; ctx.Err() == nil; n++ {
		key := keys[rng.IntN(len(keys))]
		value := fmt.Sprintf("c%d-%d", id, n)
		octx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		switch r := rng.IntN(10); {
		case r < 4:
			call := h.now()
			resp, err := cli.Get(octx, key)
			ret := h.now()
			if err != nil {
				st.failedReads.Add(1) // a failed read has no effect: not recorded
				break
			}
			v := ""
			if len(resp.Kvs) > 0 {
				v = string(resp.Kvs[0].Value)
			}
			last[key] = v
			h.add(id, regInput{kind: opGet, key: key}, regOutput{value: v}, call, ret)
		case r < 7:
			call := h.now()
			_, err := cli.Put(octx, key, value)
			ret := h.now()
			out := regOutput{}
			if err != nil {
				out.unknown, ret = true, math.MaxInt64
				st.unknown.Add(1)
			}
			h.add(id, regInput{kind: opPut, key: key, value: value}, out, call, ret)
		case r < 9:
			expect := last[key]
			cmp := clientv3.Compare(clientv3.Value(key), "=", expect)
			if expect == "" {
				cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
			}
			call := h.now()
			resp, err := cli.Txn(octx).If(cmp).Then(clientv3.OpPut(key, value)).Commit()
			ret := h.now()
			out := regOutput{}
			if err != nil {
				out.unknown, ret = true, math.MaxInt64
				st.unknown.Add(1)
			} else {
				out.ok = resp.Succeeded
			}
			h.add(id, regInput{kind: opCAS, key: key, value: value, expect: expect}, out, call, ret)
		default:
			k := fmt.Sprintf("ack/%d/%d", id, n)
			if _, err := cli.Put(octx, k, value); err == nil {
				acked.Store(k, value)
				st.acked.Add(1)
			}
		}
		cancel()
		st.ops.Add(1)
	}
}

func TestConcurrentClientsUnderRestartsSeeALinearizableHistoryAndLoseNoAcknowledgedWrite(t *testing.T) {
	dur := *linDuration
	if dur == 0 {
		dur = 20 * time.Second
		if testing.Short() {
			dur = 8 * time.Second
		}
	}
	seed := *linSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay the schedule with -etcdembed.lin-seed=%d), duration %s, %d clients", seed, seed, dur, *linClients)
	rng := rand.New(rand.NewPCG(seed, 0))

	tc := newTestCluster(t, 3)
	tc.startAll()
	keys := []string{"lin/a", "lin/b", "lin/c"}
	h := &history{t0: time.Now()}
	var st linStats
	var acked sync.Map

	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var wg sync.WaitGroup
	for c := 0; c < *linClients; c++ {
		order := []int{c % 3, (c + 1) % 3, (c + 2) % 3}
		cli := tc.client(order...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			runClient(ctx, c, cli, h, seed, keys, &st, &acked)
		}()
	}

	// Nemesis: stop a member (the leader half of the time) gracefully or
	// abruptly (halt: no leadership transfer), keep it down a moment,
	// restart it from its data; one member down at a time.
	var schedule []string
	for ctx.Err() == nil {
		victim := rng.IntN(3)
		if rng.IntN(2) == 0 {
			for i, m := range tc.members {
				if m.IsLeader() {
					victim = i
				}
			}
		}
		wasLeader := tc.members[victim].IsLeader()
		how := "stop"
		if rng.IntN(2) == 0 {
			how = "halt" // abrupt: no leadership transfer
			tc.members[victim].halt()
		} else {
			tc.stop(victim)
		}
		st.faults.Add(1)
		schedule = append(schedule, fmt.Sprintf("%s m%d (leader=%v)", how, victim, wasLeader))
		sleepCtx(ctx, time.Duration(300+rng.IntN(1200))*time.Millisecond)
		tc.start(victim)
		sleepCtx(ctx, time.Duration(500+rng.IntN(1500))*time.Millisecond)
	}
	wg.Wait()

	// Final reads through every member, after the faults, join the history.
	for i := range tc.members {
		cli := tc.client(i)
		for _, k := range keys {
			call := h.now()
			resp, err := cli.Get(ctxT(t, 10*time.Second), k)
			if err != nil {
				t.Fatalf("final read of %s through m%d: %v", k, i, err)
			}
			v := ""
			if len(resp.Kvs) > 0 {
				v = string(resp.Kvs[0].Value)
			}
			h.add(100+i, regInput{kind: opGet, key: k}, regOutput{value: v}, call, h.now())
		}
	}

	// Zero lost acknowledged writes.
	lost := 0
	final := map[string]string{}
	resp, err := tc.client(0).Get(ctxT(t, 30*time.Second), "ack/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		final[string(kv.Key)] = string(kv.Value)
	}
	acked.Range(func(k, v any) bool {
		if final[k.(string)] != v.(string) {
			lost++
			t.Errorf("acknowledged write %s=%s lost (read %q)", k, v, final[k.(string)])
		}
		return true
	})

	res, info := porcupine.CheckOperationsVerbose(registerModel, h.ops, 2*time.Minute)
	t.Logf("linearizability: %d operations (%d in the checked history, %d ambiguous writes, %d failed reads dropped), "+
		"%d faults injected, %d acknowledged unique writes, %d lost; checker: %s",
		st.ops.Load(), len(h.ops), st.unknown.Load(), st.failedReads.Load(), st.faults.Load(), st.acked.Load(), lost, res)
	t.Logf("fault schedule: %s", strings.Join(schedule, ", "))
	if st.faults.Load() == 0 {
		t.Error("no fault injected")
	}
	if res != porcupine.Ok {
		_ = info
		t.Fatalf("history not linearizable (%s); seed %d", res, seed)
	}

	t.Run("the checker rejects a corrupted copy of this history", func(t *testing.T) {
		checkCorruptionsRejected(t, h.ops)
	})
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// checkCorruptionsRejected corrupts a recorded history in two ways that no
// correct store can produce and requires porcupine to find each illegal.
func checkCorruptionsRejected(t *testing.T, ops []porcupine.Operation) {
	// 1. A read returns a value nobody wrote.
	bad := append([]porcupine.Operation(nil), ops...)
	found := false
	for i, op := range bad {
		if in := op.Input.(regInput); in.kind == opGet && op.Output.(regOutput).value != "" {
			bad[i].Output = regOutput{value: "never-written"}
			found = true
			break
		}
	}
	if !found {
		t.Fatal("history has no non-empty read to corrupt")
	}
	if porcupine.CheckOperations(registerModel, bad) {
		t.Error("a read of a value never written was accepted")
	}

	// 2. A stale read: after put p2 completed, which started after put p1
	// completed, a read returns p1's value.
	bad = append([]porcupine.Operation(nil), ops...)
	found = false
	for i, get := range bad {
		gin := get.Input.(regInput)
		if gin.kind != opGet {
			continue
		}
		var p1, p2 *porcupine.Operation
		for j := range bad {
			p := &bad[j]
			pin := p.Input.(regInput)
			if pin.kind != opPut || pin.key != gin.key || p.Output.(regOutput).unknown || p.Return >= get.Call {
				continue
			}
			if p2 == nil || p.Call > p2.Call {
				p2 = p
			}
		}
		if p2 == nil {
			continue
		}
		for j := range bad {
			p := &bad[j]
			pin := p.Input.(regInput)
			if pin.kind == opPut && pin.key == gin.key && !p.Output.(regOutput).unknown && p.Return < p2.Call {
				p1 = p
				break
			}
		}
		if p1 == nil {
			continue
		}
		bad[i].Output = regOutput{value: p1.Input.(regInput).value}
		found = true
		break
	}
	if !found {
		t.Log("no put/put/get chain to build a stale read from; only corruption 1 checked")
		return
	}
	if porcupine.CheckOperations(registerModel, bad) {
		t.Error("a stale read was accepted")
	}
}

func TestRegisterModelAcceptsLegalAndRejectsIllegalHistories(t *testing.T) {
	put := func(c int, v string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: regInput{kind: opPut, key: "k", value: v}, Output: regOutput{}, Call: call, Return: ret}
	}
	get := func(c int, v string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: regInput{kind: opGet, key: "k"}, Output: regOutput{value: v}, Call: call, Return: ret}
	}
	cas := func(c int, expect, v string, ok, unknown bool, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: regInput{kind: opCAS, key: "k", value: v, expect: expect},
			Output: regOutput{ok: ok, unknown: unknown}, Call: call, Return: ret}
	}
	for _, c := range []struct {
		name  string
		ops   []porcupine.Operation
		legal bool
	}{
		{"a read after a put sees it", []porcupine.Operation{put(0, "1", 0, 10), get(1, "1", 20, 30)}, true},
		{"a read after a put cannot miss it", []porcupine.Operation{put(0, "1", 0, 10), get(1, "", 20, 30)}, false},
		{"a read concurrent with a put may miss it", []porcupine.Operation{put(0, "1", 0, 30), get(1, "", 10, 20)}, true},
		{"a read cannot return an overwritten value", []porcupine.Operation{put(0, "1", 0, 10), put(0, "2", 20, 30), get(1, "1", 40, 50)}, false},
		{"a successful cas applies", []porcupine.Operation{put(0, "1", 0, 10), cas(1, "1", "2", true, false, 20, 30), get(2, "2", 40, 50)}, true},
		{"a failed cas must not have matched", []porcupine.Operation{put(0, "1", 0, 10), cas(1, "1", "2", false, false, 20, 30)}, false},
		{"an ambiguous put may never apply", []porcupine.Operation{put(0, "1", 0, 10), {ClientId: 1, Input: regInput{kind: opPut, key: "k", value: "2"}, Output: regOutput{unknown: true}, Call: 20, Return: math.MaxInt64}, get(2, "1", 40, 50)}, true},
		{"an ambiguous put may apply late", []porcupine.Operation{put(0, "1", 0, 10), {ClientId: 1, Input: regInput{kind: opPut, key: "k", value: "2"}, Output: regOutput{unknown: true}, Call: 20, Return: math.MaxInt64}, get(2, "1", 40, 50), get(2, "2", 60, 70)}, true},
		{"an ambiguous cas cannot apply before its call", []porcupine.Operation{put(0, "1", 0, 10), get(2, "2", 15, 18), cas(1, "1", "2", false, true, 20, math.MaxInt64)}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := porcupine.CheckOperations(registerModel, c.ops); got != c.legal {
				t.Errorf("linearizable = %v, want %v", got, c.legal)
			}
		})
	}
}
