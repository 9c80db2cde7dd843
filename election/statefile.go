package election

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/masterd/masterd/internal/atomicfile"
)

const stateFileName = "election-state.json"

// stateFile is what the driver persists: the incarnation counter and the
// per-role term state of the core.
type stateFile struct {
	Incarnation uint64               `json:"incarnation"`
	Roles       map[string]RoleState `json:"roles"`
	// Membership and EpochFloor are the node's latest membership and the
	// highest epoch it knows of (absent before the first change).
	Membership *Membership `json:"membership,omitempty"`
	EpochFloor uint64      `json:"epochFloor,omitempty"`
}

func loadState(dir string) (stateFile, error) {
	var s stateFile
	b, err := os.ReadFile(filepath.Join(dir, stateFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return stateFile{Roles: map[string]RoleState{}}, nil
	}
	if err != nil {
		return s, fmt.Errorf("election: read state: %w", err)
	}
	if len(b) > 1<<20 {
		return s, fmt.Errorf("election: read state: %d bytes is too large", len(b))
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("election: parse state %s: %w", filepath.Join(dir, stateFileName), err)
	}
	if s.Roles == nil {
		s.Roles = map[string]RoleState{}
	}
	return s, nil
}

// saveState writes s durably: temp file, fsync, rename, fsync directory.
func saveState(dir string, s stateFile) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("election: encode state: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, stateFileName), b, 0o600, atomicfile.MkdirAll(0o700)); err != nil {
		return fmt.Errorf("election: write state: %w", err)
	}
	return nil
}
