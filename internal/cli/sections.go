package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/masterd/masterd/agent"
)

// printSections renders each component's section of the status document; a
// section that does not decode is named, not skipped silently.
func printSections(w io.Writer, st agent.Status) {
	section := func(name string, v any) bool {
		ok, err := st.Section(name, v)
		if err != nil {
			fmt.Fprintf(w, "\n%v\n", err)
			return false
		}
		return ok
	}
	var el agent.ElectionStatus
	if section("election", &el) {
		printElection(w, el)
	}
	var e agent.EtcdStatus
	if section("etcd", &e) {
		health := "healthy"
		if !e.Healthy {
			health = "unhealthy: " + e.Error
		}
		role := "follower"
		if e.Leader {
			role = "leader"
		}
		fmt.Fprintf(w, "\netcd: member %s, %s, %s; members: %s\n", e.ID, role, health, strings.Join(e.Members, ", "))
	}
	var ms agent.MembershipStatus
	if section("membership", &ms) {
		printMembership(w, ms)
	}
	var v agent.VIPStatus
	if section("vip", &v) {
		held := "not held here"
		if v.Owned {
			held = "held by this node"
		}
		fence := ""
		if v.Fence {
			fence = ", kernel fence on"
		}
		fmt.Fprintf(w, "vip: %s %s%s\n", v.Address, held, fence)
	}
	var backends []agent.BackendStatus
	if section("lb", &backends) && len(backends) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "BACKEND\tADDRESS\tUP\tACTIVE\tLAST ERROR")
		for _, b := range backends {
			fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%s\n", b.Name, b.Address, b.Up, b.Active, dash(b.LastError))
		}
		tw.Flush()
	}
	var us []agent.UnitStatus
	if section("kube", &us) && len(us) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "UNIT\tSTATE\tPID\tRESTARTS\tVERSION")
		for _, u := range us {
			fmt.Fprintf(tw, "%s\t%s/%s\t%d\t%d\t%s\n", u.Name, u.Active, u.Sub, u.PID, u.Restarts, dash(u.Version))
		}
		tw.Flush()
		for _, u := range us {
			if u.Refused != "" {
				fmt.Fprintf(w, "%s not run here: refused by the version skew policy: %s\n", u.Name, u.Refused)
			}
		}
	}
	var certs []agent.CertStatus
	if section("pki", &certs) && len(certs) > 0 {
		soonest := certs[0]
		for _, c := range certs {
			if c.Days < soonest.Days {
				soonest = c
			}
		}
		fmt.Fprintf(w, "\ncertificates: %d, next to expire %s in %d days\n", len(certs), soonest.Name, soonest.Days)
	}
}

// printElection renders the roles, the membership and the gossip members.
func printElection(w io.Writer, el agent.ElectionStatus) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tHOLDER\tTERM\tTHIS NODE\tQUORUM")
	for _, role := range sortedKeys(el.Roles) {
		r := el.Roles[role]
		state := r.State
		if r.Learning {
			state += " (learning its term)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%v\n", role, dash(r.Holder), r.Term, state, r.Quorum)
	}
	tw.Flush()
	if m := el.Membership; m.Epoch > 0 {
		fmt.Fprintf(w, "\nmembership: epoch %d, voters %s", m.Epoch, strings.Join(m.Voters, ", "))
		if len(m.Old) > 0 {
			fmt.Fprintf(w, " (changing from %s: quorums need a majority of both)", strings.Join(m.Old, ", "))
		}
		switch {
		case el.EpochFloor > m.Epoch:
			fmt.Fprintf(w, "; STALE: epoch %d exists, this master campaigns for nothing until it has it", el.EpochFloor)
		case el.Settled:
			fmt.Fprint(w, "; settled")
		default:
			fmt.Fprint(w, "; not settled yet (adopted less than a lease ago, or still learning)")
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tADDRESS\tSTATE\tVOTER")
	sort.Slice(el.Members, func(i, j int) bool { return el.Members[i].Name < el.Members[j].Name })
	for _, m := range el.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\n", m.Name, m.Addr, m.State, m.Voter)
	}
	tw.Flush()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printMembership renders the agreed masters and a change in progress.
func printMembership(w io.Writer, m agent.MembershipStatus) {
	names := sortedKeys(m.Voters)
	masters := make([]string, 0, len(names))
	for _, n := range names {
		masters = append(masters, n+"="+m.Voters[n])
	}
	fmt.Fprintf(w, "masters (record epoch %d): %s\n", m.Epoch, strings.Join(masters, ", "))
	if m.Change != nil {
		fmt.Fprintf(w, "change in progress: %s", m.Change)
		if m.Waiting != "" {
			fmt.Fprintf(w, "; waiting for %s", m.Waiting)
		}
		fmt.Fprintln(w)
	}
	if m.Error != "" {
		fmt.Fprintf(w, "membership: %s\n", m.Error)
	}
}
