package scenarios

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// TestFastProfileFenceSilencesAKilledHolder: with vip.profile fast and the
// kernel fence, the VIP holder's PID 1 is SIGKILLed while its link stays up
// (its kernel keeps the address and would keep answering ARP without the
// fence): the wire never shows two MACs for the VIP, the VIP moves, and the
// client follows. Kubernetes is not needed (kubernetes.mode: none).
func TestFastProfileFenceSilencesAKilledHolder(t *testing.T) {
	o := options(t)
	o.Prefix = fmt.Sprintf("scfast%d", os.Getpid()%1000000)
	o.KubeBinDir = ""
	o.VIPProfile, o.Fence = "fast", true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s := upLab(t, ctx, o, 5*time.Minute)

	for trial := 1; trial <= 3; trial++ {
		victim := s.vipHolder(t)
		p, err := s.StartPinger(10 * time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		am, err := s.MonitorARP(20*time.Millisecond, 10*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		t0 := time.Now()
		if err := s.KillPID1(victim); err != nil {
			t.Fatal(err)
		}
		holder, moved := s.waitVIPOff(t, victim, t0, true, 10*time.Second)
		time.Sleep(2 * time.Second)
		rounds, dual, none, aerr := am.Stop()
		pr := p.Stop()
		macs, _ := s.MACs()
		got, err := s.ARPHolders(300 * time.Millisecond)
		if err != nil || len(got) != 1 || got[0] != macs[holder] {
			t.Errorf("trial %d: ARP answers for the VIP from %v (%v), want only %s's %s: the fence did not silence the killed holder", trial, got, err, holder, macs[holder])
		}
		if dual > 0 || aerr != nil {
			t.Errorf("trial %d: two MACs answered ARP for the VIP in %d of %d rounds (%v)", trial, dual, rounds, aerr)
		}
		figure(t, "trial %d: PID 1 of %s killed, link up: VIP in %s's namespace %.3fs later; client ping longest gap %.3fs (the killed kernel answers ping until the fence closes); ARP every 20 ms: %d rounds, %d with two MACs, %d unanswered",
			trial, victim.Name, holder, moved.Seconds(), pr.LongestGap.Seconds(), rounds, dual, none)
		if err := s.Reboot(ctx, victim); err != nil {
			t.Fatal(err)
		}
		s.waitReady(t, ctx, 3*time.Minute)
	}
}
