package etcdembed

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Three members take acknowledged writes from concurrent clients; two are
// stopped for good; the survivor is recovered from its own data as a
// one-member cluster and holds every acknowledged write; a fresh member added
// as a learner (AddLearner, as masterd member add does) joins, is promoted
// and catches up.
func TestRecoverSurvivorKeepsAcknowledgedWritesAndTakesAFreshMember(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.startAll()
	cli := tc.client(0, 1, 2)

	// Writers run until the two members go away; only acknowledged writes
	// count.
	var mu sync.Mutex
	acked := map[string]string{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k, v := fmt.Sprintf("w%d/%04d", w, i), fmt.Sprintf("v%d", i)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := cli.Put(ctx, k, v)
				cancel()
				if err == nil {
					mu.Lock()
					acked[k] = v
					mu.Unlock()
				}
			}
		}()
	}
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 150 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Lose m1 and m2 for good while the writers still run.
	tc.stop(1)
	tc.stop(2)
	close(stop)
	wg.Wait()
	tc.stop(0)

	// While nothing serves, a recover without data is refused.
	empty := tc.config(0)
	empty.DataDir = t.TempDir()
	if err := Recover(ctxT(t, 30*time.Second), empty, RecoverOptions{}); err == nil || !strings.Contains(err.Error(), "no etcd data") {
		t.Fatalf("recover of an empty data dir: %v, want a refusal naming the missing data", err)
	}

	afterRan := false
	err := Recover(ctxT(t, 60*time.Second), tc.cfgs[0], RecoverOptions{After: func(ctx context.Context, c *clientv3.Client) error {
		afterRan = true
		_, err := c.Put(ctx, "recovered", "yes")
		return err
	}})
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	if !afterRan {
		t.Fatal("recover did not run its After step")
	}
	tc.replace(0, tc.config(0))
	tc.start(0)
	c0 := tc.members[0].Client()
	ms, err := tc.members[0].Members(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Name != "m0" {
		t.Fatalf("members after recover: %v, want m0 alone", ms)
	}
	checkAll := func(c *clientv3.Client, who string, opts ...clientv3.OpOption) {
		t.Helper()
		resp, err := c.Get(ctxT(t, 10*time.Second), "w", append([]clientv3.OpOption{clientv3.WithPrefix()}, opts...)...)
		if err != nil {
			t.Fatalf("%s: read: %v", who, err)
		}
		got := map[string]string{}
		for _, kv := range resp.Kvs {
			got[string(kv.Key)] = string(kv.Value)
		}
		missing := 0
		for k, v := range acked {
			if got[k] != v {
				missing++
			}
		}
		if missing > 0 {
			t.Fatalf("%s: %d of %d acknowledged writes missing", who, missing, len(acked))
		}
		t.Logf("%s: all %d acknowledged writes present (%d keys)", who, len(acked), len(got))
	}
	checkAll(c0, "recovered survivor")
	if got := mustGet(t, c0, "recovered"); got != "yes" {
		t.Errorf("write of the After step reads %q, want yes", got)
	}
	mustPut(t, c0, "after-recover", "1")

	// A fresh member (new name, new ports) joins the recovered cluster; its
	// configuration still lists the lost members, as a copied masterd.yaml
	// would.
	i := tc.addPeer()
	id, err := AddLearner(ctxT(t, 10*time.Second), c0, tc.cfgs[0], tc.peers[i])
	if err != nil {
		t.Fatalf("add learner: %v", err)
	}
	if again, err := AddLearner(ctxT(t, 10*time.Second), c0, tc.cfgs[0], tc.peers[i]); err != nil || again != id {
		t.Fatalf("second add of the same learner: id %x, %v; want the same id %x and no error", again, err, id)
	}
	if st, err := StateOf(ctxT(t, 10*time.Second), c0, tc.cfgs[0], tc.peers[i]); err != nil || st != MemberUnstarted {
		t.Fatalf("state of the added learner: %v, %v; want unstarted", st, err)
	}
	tc.start(i)
	if st, err := StateOf(ctxT(t, 10*time.Second), c0, tc.cfgs[0], tc.peers[i]); err != nil || st != MemberVoter {
		t.Fatalf("state of the joined member: %v, %v; want voter", st, err)
	}
	ci := tc.client(i)
	mustGet(t, ci, "after-recover") // linearizable: the member has applied up to the leader's commit
	checkAll(ci, "fresh member", clientv3.WithSerializable())
	if err := Healthy(ctxT(t, 20*time.Second), c0); err != nil {
		t.Errorf("cluster after the fresh member joined: %v", err)
	}
}

// Recover refuses while another member serves etcd, and changes nothing.
func TestRecoverRefusesWhilePeersServe(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.startAll()
	mustPut(t, tc.members[1].Client(), "k", "v")
	tc.stop(0)
	err := Recover(ctxT(t, 30*time.Second), tc.cfgs[0], RecoverOptions{})
	if err == nil || !strings.Contains(err.Error(), "m1") {
		t.Fatalf("recover while m1 and m2 serve: %v, want a refusal naming them", err)
	}
	t.Logf("refused: %v", err)
	tc.replace(0, tc.config(0))
	tc.start(0)
	if got := mustGet(t, tc.members[0].Client(), "k"); got != "v" {
		t.Errorf("member after a refused recover reads %q, want v", got)
	}
}
