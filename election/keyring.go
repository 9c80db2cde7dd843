package election

import (
	"bytes"
	"errors"
	"fmt"
)

// SetKeys makes memberlist's keyring hold exactly keys, keys[0] the primary
// (the one that encrypts; every key in the ring decrypts). It adds the
// missing keys first, then switches the primary, then removes the keys no
// longer listed, so a change that keeps the old primary among keys never
// leaves this node unable to read what its peers send. A rotation is three
// such changes applied by every master in turn (agent: install, use,
// remove), each only after every master applied the previous one: no two
// masters are ever without a key in common. It may be called from any
// goroutine after Start; the keyring is memberlist's and locks itself.
func (d *Driver) SetKeys(keys [][]byte) error {
	if !d.started.Load() || d.keyring == nil {
		return errors.New("election: keyring: driver not started")
	}
	if len(keys) == 0 {
		return errors.New("election: keyring: no key")
	}
	for _, k := range keys {
		if err := d.keyring.AddKey(k); err != nil {
			return fmt.Errorf("election: keyring: add: %w", err)
		}
	}
	if !bytes.Equal(d.keyring.GetPrimaryKey(), keys[0]) {
		if err := d.keyring.UseKey(keys[0]); err != nil {
			return fmt.Errorf("election: keyring: use: %w", err)
		}
	}
	for _, k := range d.keyring.GetKeys() {
		if !containsKey(keys, k) {
			if err := d.keyring.RemoveKey(k); err != nil {
				return fmt.Errorf("election: keyring: remove: %w", err)
			}
		}
	}
	return nil
}

// Keys returns the keyring's keys, the primary first.
func (d *Driver) Keys() [][]byte {
	if d.keyring == nil {
		return nil
	}
	return d.keyring.GetKeys()
}

func containsKey(keys [][]byte, k []byte) bool {
	for _, x := range keys {
		if bytes.Equal(x, k) {
			return true
		}
	}
	return false
}
