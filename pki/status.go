package pki

import (
	"math"
	"slices"
	"strings"
	"time"
)

// CertExpiry is one line of `masterd status`' certificate list.
type CertExpiry struct {
	Name     string
	NotAfter time.Time
	// DaysLeft is whole days from now to NotAfter, negative once expired.
	DaysLeft int
}

// ExpiryReport lists f's certificates, soonest expiry first, judged at now.
func (f *Files) ExpiryReport(now time.Time) []CertExpiry {
	out := make([]CertExpiry, 0, len(f.Expiry))
	for name, t := range f.Expiry {
		out = append(out, CertExpiry{Name: name, NotAfter: t, DaysLeft: int(math.Floor(t.Sub(now).Hours() / 24))})
	}
	slices.SortFunc(out, func(a, b CertExpiry) int {
		if c := a.NotAfter.Compare(b.NotAfter); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}
