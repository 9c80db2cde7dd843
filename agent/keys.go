package agent

import (
	"context"
	"errors"
	"time"

	"github.com/masterd/masterd/pki"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Gossip key rotation (the roll itself: keyroll.go).
//
// The gossip keys are generations (pki.Secret.GossipKeyGen). Every daemon
// applies each revision of the record to its memberlist keyring
// (election.SetKeys: add, then switch the primary, then remove).
//
// A master that was down during a roll starts with its old keyring and
// cannot gossip; its etcd member still reaches the others (etcd has its own
// TLS), so the component reads the record when it starts and installs the
// current keys before anything else needs gossip, and the election's
// periodic re-join brings it in.

// Keys of the gossip keyring record and its acknowledgements in etcd.
const (
	GossipKeysKey       = "/masterd/gossip-keys"
	GossipKeysAckPrefix = "/masterd/gossip-keys-ack/"
)

// gossipKeysFile is the keyring last applied, in dataDir.
const gossipKeysFile = "gossip-keys.json"

var gossipRoll = keyRoll{what: "gossip keys", key: GossipKeysKey, ackPrefix: GossipKeysAckPrefix, maxGen: pki.MaxGossipKeyGeneration}

// ReadGossipKeys reads the gossip keyring record and its revision.
func ReadGossipKeys(ctx context.Context, cli *clientv3.Client) (KeyRing, int64, error) {
	return gossipRoll.read(ctx, cli)
}

// GossipKeyAcks returns, by master name, the gossip keyring revision each
// master applied last.
func GossipKeyAcks(ctx context.Context, cli *clientv3.Client) (map[string]int64, error) {
	return gossipRoll.acks(ctx, cli)
}

// RotateGossipKey rolls the cluster to a new gossip key generation, or
// finishes a roll an earlier run left (keyRoll.rotate).
func RotateGossipKey(ctx context.Context, cli *clientv3.Client, wait time.Duration, progress func(KeyRollStep)) (KeyRing, error) {
	return gossipRoll.rotate(ctx, cli, wait, progress, nil)
}

// gossipKeys are the keys the election starts with (primary first): the
// keyring applied last, which etcd's record then brings up to date.
func (n *node) gossipKeys() ([][]byte, error) {
	st := n.loadKeyRing(gossipKeysFile, gossipRoll.what)
	return n.secret.GossipKeyring(st.Record.Generations, st.Record.Primary)
}

func newGossipKeysComponent(n *node, etcdC *etcdComponent, el *electionComponent) *keyRingComponent {
	return &keyRingComponent{n: n, name: "gossip-keys", roll: gossipRoll, file: gossipKeysFile,
		etcd: etcdClientOf(etcdC),
		apply: func(r KeyRing) error {
			keys, err := n.secret.GossipKeyring(r.Generations, r.Primary)
			if err != nil {
				return err
			}
			if el.d == nil {
				return errors.New("gossip keys: election not running")
			}
			return el.d.SetKeys(keys)
		},
	}
}
