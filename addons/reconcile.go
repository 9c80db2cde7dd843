package addons

import (
	"context"
	"fmt"

	"github.com/masterd/masterd/bootstrap"
)

// Reconcile applies every enabled addon with server-side apply (field
// manager masterd, forced: masterd's version wins) and returns the objects
// it created or changed; nothing when the cluster already matches. Meant
// for one master at a time (the controller-manager role's holder), run
// periodically: an image renamed in the config, or an object edited or
// deleted by hand, is put back at the next run. A disabled addon's objects
// are left as they are.
func Reconcile(ctx context.Context, a bootstrap.Applier, c Config) ([]string, error) {
	objs, err := Objects(c)
	if err != nil {
		return nil, err
	}
	changed, err := bootstrap.ApplyAll(ctx, a, objs)
	if err != nil {
		return changed, fmt.Errorf("addons: %w", err)
	}
	return changed, nil
}
