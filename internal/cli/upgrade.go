package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/masterd/masterd/agent"
	"github.com/masterd/masterd/etcdembed"
	"github.com/masterd/masterd/internal/skew"
	"github.com/spf13/cobra"
)

func init() { register(newUpgradeCmd) }

func newUpgradeCmd(Build) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "upgrade COMMAND",
		Short: "plan a rolling upgrade of masterd or the Kubernetes binaries",
		Long: `An upgrade goes one master at a time: install the new masterd package (or
the new kube binaries, or point kubernetes.binDir at them) on one master,
which restarts masterd there (its roles are handed over gracefully), wait
until it is ready, and go on with the next.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	configPath := configFlag(cmd.PersistentFlags())
	plan := &cobra.Command{
		Use:   "plan",
		Short: "print every master's versions, the order to upgrade them and what blocks it",
		Long: `Read every master's published versions (masterd build, election wire
version, kube binaries) from etcd, and print the order to upgrade the
masters in: masters holding no role first, the holders of kube-scheduler
and kube-controller-manager last (their roles move once, and a newer
scheduler or controller-manager may run only once every apiserver is
upgraded), the VIP holder after the others. Then what blocks an upgrade now:
a version skew violation, a master down or not publishing, a membership
change in progress. Exit code 1 when something blocks it.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := agent.LoadConfig(*configPath)
			if err != nil {
				return configError{err}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			in, err := readPlanInput(ctx, cfg)
			if err != nil {
				return err
			}
			p := makePlan(in)
			printPlan(c.OutOrStdout(), in, p)
			if len(p.Blockers) > 0 {
				return fmt.Errorf("upgrade blocked: %s", plural(len(p.Blockers), "problem"))
			}
			return nil
		},
	}
	cmd.AddCommand(plan)
	return cmd
}

// planInput is what the plan is made from.
type planInput struct {
	Membership agent.MembershipRecord
	Records    map[string]agent.VersionsRecord
	// EtcdUp is each master's etcd member state (absent: not an etcd
	// member).
	EtcdUp map[string]bool
	// Holders holds each role's holder as the local master sees it; nil
	// when the local agent did not answer (HoldersErr says why).
	Holders    map[string]string
	HoldersErr string
	// Local is this master's name; LocalSettled whether its election has
	// settled (false: restarted less than a longest lease ago, it cannot
	// vote yet).
	Local        string
	LocalSettled bool
}

// readPlanInput reads the membership, the versions records and the etcd
// members through the local etcd member, and the role holders from the
// local agent's /status.
func readPlanInput(ctx context.Context, cfg agent.Config) (planInput, error) {
	var in planInput
	cli, err := agent.EtcdClient(cfg)
	if err != nil {
		return in, err
	}
	defer cli.Close()
	r, _, ok, err := agent.ReadMembership(ctx, cli)
	if err != nil {
		return in, err
	}
	if !ok {
		r = agent.SeedMembership(cfg)
	}
	in.Membership = r
	if in.Records, _, err = agent.ReadVersions(ctx, cli); err != nil {
		return in, err
	}
	if in.EtcdUp, _, err = etcdembed.Liveness(ctx, cli); err != nil {
		return in, err
	}
	body, err := fetchStatus(cfg.Metrics.Listen)
	if err != nil {
		in.HoldersErr = err.Error()
		return in, nil
	}
	st, err := agent.DecodeStatus(body)
	if err != nil {
		in.HoldersErr = err.Error()
		return in, nil
	}
	var el agent.ElectionStatus
	if raw, ok := st.Sections["election"]; ok {
		if err := json.Unmarshal(raw, &el); err != nil {
			in.HoldersErr = err.Error()
			return in, nil
		}
	}
	in.Local, in.LocalSettled = st.Node, el.Settled
	in.Holders = map[string]string{}
	for role, ri := range el.Roles {
		if ri.Holder != "" {
			in.Holders[role] = ri.Holder
		}
	}
	return in, nil
}

// plan is the order and what blocks it.
type plan struct {
	Order    []planStep
	Blockers []string
	Notes    []string
}

type planStep struct {
	Name  string
	Roles []string // roles it holds now
}

// leaderOnlyRoles move once when their holder is upgraded last.
var leaderOnlyRoles = []string{agent.RoleScheduler, agent.RoleControllerManager}

// makePlan orders the masters and lists what blocks an upgrade.
func makePlan(in planInput) plan {
	var p plan
	names := slices.Sorted(maps.Keys(in.Membership.Voters))
	held := map[string][]string{}
	for role, h := range in.Holders {
		held[h] = append(held[h], role)
	}
	rank := func(n string) (int, int) {
		lo, vip := 0, 0
		for _, r := range held[n] {
			if slices.Contains(leaderOnlyRoles, r) {
				lo++
			}
			if r == agent.RoleVIP {
				vip = 1
			}
		}
		return lo, vip
	}
	sort.SliceStable(names, func(i, j int) bool {
		li, vi := rank(names[i])
		lj, vj := rank(names[j])
		if li != lj {
			return li < lj
		}
		return vi < vj
	})
	for _, n := range names {
		roles := append([]string(nil), held[n]...)
		sort.Strings(roles)
		p.Order = append(p.Order, planStep{Name: n, Roles: roles})
	}

	if c := in.Membership.Change; c != nil {
		p.Blockers = append(p.Blockers, "a membership change is in progress: "+c.String()+" (wait for it: masterd member wait, or abort it: masterd member abort)")
	}
	wires := map[int][]string{}
	all := map[string]bool{}
	for n := range in.Membership.Voters {
		all[n] = true
	}
	for n := range in.Membership.Old {
		all[n] = true
	}
	for _, n := range slices.Sorted(maps.Keys(all)) {
		up, member := in.EtcdUp[n]
		switch {
		case !member:
			p.Blockers = append(p.Blockers, n+": not an etcd member")
		case !up:
			p.Blockers = append(p.Blockers, n+": etcd member down (bring it back, or remove it: masterd member remove "+n+")")
		}
		rec, ok := in.Records[n]
		switch {
		case !ok:
			p.Notes = append(p.Notes, n+": publishes no versions (a masterd older than version records): upgrade it like the others; its kube versions count once it runs the new masterd")
		case !rec.Running:
			p.Blockers = append(p.Blockers, n+": masterd is stopped (start it before upgrading another master)")
		default:
			wires[rec.WireVersion] = append(wires[rec.WireVersion], n)
		}
	}
	if len(wires) > 1 {
		var parts []string
		for _, v := range slices.Sorted(maps.Keys(wires)) {
			parts = append(parts, fmt.Sprintf("%d on %s", v, strings.Join(wires[v], ",")))
		}
		p.Notes = append(p.Notes, "mixed election wire versions ("+strings.Join(parts, "; ")+"): finish the upgrade before starting another")
	}
	for _, r := range skew.Check(agent.SkewMasters(in.Membership, in.Records)) {
		p.Blockers = append(p.Blockers, "version skew: "+r.Error())
	}
	if in.Holders != nil && !in.LocalSettled {
		p.Blockers = append(p.Blockers, in.Local+": its election has not settled yet (masterd restarted less than a longest lease ago, its promises may still bind: it cannot vote for a successor): wait, then plan again")
	}
	if in.Holders == nil {
		p.Notes = append(p.Notes, "role holders unknown (the local agent did not answer: "+in.HoldersErr+"): the order does not put the holders last")
	}
	return p
}

func printPlan(w io.Writer, in planInput, p plan) {
	fmt.Fprintf(w, "masters (membership epoch %d):\n", in.Membership.Epoch)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMASTERD\tWIRE\tKUBE-APISERVER\tKUBE-SCHEDULER\tKUBE-CONTROLLER-MANAGER\tETCD\tROLES")
	for _, s := range p.Order {
		rec, ok := in.Records[s.Name]
		mv, wire := "unknown", "-"
		if ok {
			mv = dash(rec.Masterd.Version)
			if r := rec.Masterd.Revision; r != "" {
				mv += " (" + r[:min(len(r), 7)] + ")"
			}
			wire = fmt.Sprint(rec.WireVersion)
		}
		kube := func(c string) string {
			v := dash(rec.Kube[c])
			if rec.Refused[c] != "" {
				v += " refused"
			}
			return v
		}
		etcd := "absent"
		if up, found := in.EtcdUp[s.Name]; found {
			etcd = map[bool]string{true: "up", false: "down"}[up]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, mv, wire, kube(skew.APIServer), kube(skew.Scheduler), kube(skew.ControllerManager), etcd, dash(strings.Join(s.Roles, ",")))
	}
	tw.Flush()
	fmt.Fprintln(w, "order (one master at a time: install the new package or kube binaries there, wait until `masterd status` says ready and settled, then the next):")
	for i, s := range p.Order {
		line := fmt.Sprintf("  %d. %s", i+1, s.Name)
		if len(s.Roles) > 0 {
			line += " (holds " + strings.Join(s.Roles, ", ") + ": handed over when masterd restarts)"
		}
		fmt.Fprintln(w, line)
	}
	for _, n := range p.Notes {
		fmt.Fprintln(w, "note: "+n)
	}
	if len(p.Blockers) == 0 {
		fmt.Fprintln(w, "blocked by: nothing")
		return
	}
	fmt.Fprintln(w, "blocked by:")
	for _, b := range p.Blockers {
		fmt.Fprintln(w, "  - "+b)
	}
}
