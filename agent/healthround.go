package agent

import "context"

// A health round is one evaluation of every role's eligibility
// (electionComponent.evaluateHealth, every healthInterval). The roles share
// one underlying check (wire.go's fit: the local apiserver's readiness, a
// D-Bus read and an HTTPS GET on a new TLS connection, or the etcd member's
// health, a linearizable read): onePerRound runs it once per round instead
// of once per role, and every role of the round sees its result.
type healthRound struct {
	results map[*healthSource]error
}

type healthRoundKey struct{}

// withHealthRound starts a round; the checks run under ctx share their
// results until the round's caller is done with it. A round is used by one
// goroutine at a time (evaluateHealth checks the roles one after another).
func withHealthRound(ctx context.Context) context.Context {
	return context.WithValue(ctx, healthRoundKey{}, &healthRound{results: map[*healthSource]error{}})
}

// onePerRound returns h run at most once per health round; outside a round
// (e.g. /readyz) every call runs h.
func onePerRound(h healthSource) healthSource {
	key := &h
	return func(ctx context.Context) error {
		r, ok := ctx.Value(healthRoundKey{}).(*healthRound)
		if !ok {
			return h(ctx)
		}
		if err, done := r.results[key]; done {
			return err
		}
		err := h(ctx)
		r.results[key] = err
		return err
	}
}
