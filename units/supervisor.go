package units

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// Unit is a systemd unit the supervisor starts, stops and watches.
type Unit struct {
	// Name is the unit name, e.g. "kube-apiserver.service".
	Name string
	// LeaderOnly marks units that run only while this node leads their role
	// (scheduler, controller-manager): Stop uses Config.LeaderStopGrace.
	LeaderOnly bool
	// Health is checked after the unit is active; nil means active is enough.
	Health Probe
	// Definition makes the unit managed: masterd writes it under
	// Config.UnitDir before each start. Nil: an installed unit (existing-units
	// mode) that masterd only starts, stops and watches; it gets no
	// MASTERD_TERM.
	Definition *Definition
}

// Status is the supervisor's view of one unit.
type Status struct {
	Name        string
	ActiveState string // active, activating, deactivating, inactive, failed
	SubState    string // running, auto-restart, dead, ...
	MainPID     uint32
	// Restarts counts automatic restarts by systemd seen since Register.
	Restarts uint64
	// Failures counts exits or failures masterd did not ask for.
	Failures uint64
}

// Option changes how the supervisor reaches systemd; production uses none.
type Option func(*Supervisor)

// WithRoot prefixes every file and socket path the supervisor opens (not the
// paths written into unit files). Tests point it at a lab host's root as seen
// from the test process (/proc/<pid1>/root).
func WithRoot(root string) Option { return func(s *Supervisor) { s.root = root } }

// WithJournal replaces how an error quotes a unit's journal (default:
// journalctl -u <unit> --since <start>, with --root when WithRoot is set).
func WithJournal(f func(ctx context.Context, unit string, since time.Time, lines int) (string, error)) Option {
	return func(s *Supervisor) { s.journal = f }
}

// WithNotify registers fn to be called on every observed state change of a
// registered unit. It is called from the supervisor's watch goroutine,
// serially; it must not block.
func WithNotify(fn func(Status)) Option { return func(s *Supervisor) { s.notify = fn } }

// Supervisor starts, stops and watches units over systemd's private D-Bus
// socket, reconnecting when the connection is lost (daemon-reexec, systemd
// restart). Its methods are safe for concurrent use; operations on one unit
// are serialised.
type Supervisor struct {
	cfg     Config
	root    string
	log     *slog.Logger
	m       *metrics
	journal func(ctx context.Context, unit string, since time.Time, lines int) (string, error)
	notify  func(Status)

	dialMu sync.Mutex // serialises dialing
	mu     sync.Mutex // guards conn, units, dials
	conn   *sdbus.Conn
	dials  int
	units  map[string]*unitState

	readSeq atomic.Uint64

	updates chan *sdbus.PropertiesUpdate
	subErrs chan error
	kick    chan struct{}
	cancel  context.CancelFunc
	ctx     context.Context
	done    chan struct{}
	closed  sync.Once
}

type unitState struct {
	u  Unit
	op sync.Mutex // serialises Start/Stop/Restart of this unit

	// Guarded by Supervisor.mu.
	st          Status
	known       bool
	nRestarts   uint32
	intentional bool   // masterd is stopping it: exits are not failures
	lastSeq     uint64 // seq of the last applied reading
	abortStart  context.CancelCauseFunc
	starts      uint64
}

// errStopped ends a Start that a Stop of the same unit overtook.
var errStopped = errors.New("stopped while starting")

// New returns a supervisor. It connects to systemd lazily and keeps
// reconnecting in the background until Close.
func New(cfg Config, reg prometheus.Registerer, log *slog.Logger, opts ...Option) (*Supervisor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("units: register metrics: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Supervisor{
		cfg:     cfg,
		log:     log.With("component", "units"),
		m:       m,
		units:   map[string]*unitState{},
		updates: make(chan *sdbus.PropertiesUpdate, 256),
		subErrs: make(chan error, 16),
		kick:    make(chan struct{}, 1),
		cancel:  cancel,
		ctx:     ctx,
		done:    make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	if s.journal == nil {
		s.journal = s.journalctl
	}
	go s.watch()
	return s, nil
}

// Register adds a unit to supervise. Registering a name again replaces its
// definition and probe (between operations).
func (s *Supervisor) Register(u Unit) error {
	if err := validUnitName(u.Name); err != nil {
		return err
	}
	s.mu.Lock()
	if st, ok := s.units[u.Name]; ok {
		st.u = u
	} else {
		s.units[u.Name] = &unitState{u: u, st: Status{Name: u.Name}}
		s.m.active.WithLabelValues(u.Name).Set(0)
		s.m.restarts.WithLabelValues(u.Name)
		s.m.failures.WithLabelValues(u.Name)
	}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

func validUnitName(n string) error {
	if n == "" || strings.ContainsAny(n, "/ \n\x00") || !strings.HasSuffix(n, ".service") || len(n) > 255 {
		return fmt.Errorf("units: unit name %q: want a .service name without '/' or spaces", n)
	}
	return nil
}

// Status returns the last observed state of a registered unit.
func (s *Supervisor) Status(name string) (Status, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.units[name]
	if !ok {
		return Status{}, false
	}
	return st.st, true
}

// Close stops watching and closes the connection. Units keep running: they
// outlive masterd by design.
func (s *Supervisor) Close() error {
	s.closed.Do(func() {
		s.cancel()
		<-s.done
		s.mu.Lock()
		s.closeConnLocked()
		s.mu.Unlock()
	})
	return nil
}

func (s *Supervisor) unit(name string) (*unitState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.units[name]
	if !ok {
		return nil, fmt.Errorf("units: %s: not registered", name)
	}
	return st, nil
}

func (s *Supervisor) closeConnLocked() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// live returns the current connection if it and the signal connection are up.
func (s *Supervisor) live() *sdbus.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil && s.conn.Connected() {
		return s.conn
	}
	return nil
}

// connection returns a live connection, dialing (with back-off, until ctx
// ends) when there is none.
func (s *Supervisor) connection(ctx context.Context) (*sdbus.Conn, error) {
	if c := s.live(); c != nil {
		return c, nil
	}
	s.dialMu.Lock()
	defer s.dialMu.Unlock()
	for {
		if c := s.live(); c != nil {
			return c, nil
		}
		c, err := s.dial()
		if err == nil {
			s.mu.Lock()
			s.closeConnLocked()
			s.conn = c
			s.dials++
			n := s.dials
			s.mu.Unlock()
			if n > 1 {
				s.m.reconnects.Inc()
				s.log.Info("reconnected to systemd", "socket", s.socket())
			}
			select {
			case s.kick <- struct{}{}:
			default:
			}
			return c, nil
		}
		s.log.Debug("connect to systemd failed", "socket", s.socket(), "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("units: connect to systemd at %s: %w (last error: %v)", s.socket(), ctx.Err(), err)
		case <-s.ctx.Done():
			return nil, errors.New("units: supervisor closed")
		case <-time.After(s.cfg.ReconnectBackoff):
		}
	}
}

func (s *Supervisor) socket() string { return s.root + s.cfg.Socket }

// dial opens a private connection to systemd (no bus, no Hello) and
// subscribes to unit property changes.
func (s *Supervisor) dial() (*sdbus.Conn, error) {
	path := s.socket()
	// The connection lives on the supervisor's context (a call's context must
	// not end it); a timer ends it if dialing, authenticating or subscribing
	// hangs (a systemd that accepts but does not answer yet).
	connCtx, abort := context.WithCancel(s.ctx)
	timer := time.AfterFunc(s.cfg.ProbeTimeout+time.Second, abort)
	c, err := sdbus.NewConnection(func() (*dbus.Conn, error) {
		conn, err := dbus.Dial("unix:path="+path, dbus.WithContext(connCtx))
		if err != nil {
			return nil, err
		}
		if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
			conn.Close()
			return nil, err
		}
		return conn, nil
	})
	if err == nil {
		// Before Subscribe: systemd sends no signal until then, and the
		// Subscribe round trip orders this write before go-systemd's
		// dispatcher reads it.
		c.SetPropertiesSubscriber(s.updates, s.subErrs)
		if err = c.Subscribe(); err != nil {
			c.Close()
		}
	}
	if !timer.Stop() {
		if err == nil {
			c.Close()
		}
		return nil, fmt.Errorf("dial %s: timed out", path)
	}
	if err != nil {
		abort()
		return nil, err
	}
	return c, nil
}

// do runs fn on a live connection; when fn fails because the connection
// died, it reconnects and runs fn again (until ctx ends).
func (s *Supervisor) do(ctx context.Context, fn func(c *sdbus.Conn) error) error {
	for {
		c, err := s.connection(ctx)
		if err != nil {
			return err
		}
		err = fn(c)
		if err == nil || s.live() == c {
			return err
		}
		s.log.Info("lost connection to systemd", "err", err)
		select {
		case <-ctx.Done():
			return err
		default:
		}
	}
}

// props reads the unit and service properties the supervisor needs.
type props struct {
	activeState, subState, result string
	mainPID                       uint32
	nRestarts                     uint32
	execMainStatus                int32
	execMainStart                 uint64
	loadState                     string
	invocation                    string
	seq                           uint64 // order of the reads, to drop stale ones
}

func (s *Supervisor) read(ctx context.Context, name string) (props, error) {
	p := props{seq: s.readSeq.Add(1)}
	err := s.do(ctx, func(c *sdbus.Conn) error {
		u, err := c.GetUnitPropertiesContext(ctx, name)
		if err != nil {
			return err
		}
		sv, err := c.GetUnitTypePropertiesContext(ctx, name, "Service")
		if err != nil {
			return err
		}
		p.activeState, _ = u["ActiveState"].(string)
		p.subState, _ = u["SubState"].(string)
		p.loadState, _ = u["LoadState"].(string)
		if b, ok := u["InvocationID"].([]byte); ok {
			p.invocation = fmt.Sprintf("%x", b)
		}
		p.result, _ = sv["Result"].(string)
		p.mainPID, _ = sv["MainPID"].(uint32)
		p.nRestarts, _ = sv["NRestarts"].(uint32)
		p.execMainStatus, _ = sv["ExecMainStatus"].(int32)
		p.execMainStart, _ = sv["ExecMainStartTimestampMonotonic"].(uint64)
		return nil
	})
	if err != nil {
		return p, fmt.Errorf("units: read %s: %w", name, err)
	}
	return p, nil
}

// observe folds a fresh reading into the unit's status and metrics.
func (s *Supervisor) observe(name string, p props) {
	s.mu.Lock()
	st, ok := s.units[name]
	if !ok {
		s.mu.Unlock()
		return
	}
	if p.seq < st.lastSeq {
		// A reading that started before one already applied (the watcher
		// and a Start/Stop read concurrently): applying it would replay an
		// old transition.
		s.mu.Unlock()
		return
	}
	st.lastSeq = p.seq
	prev := st.st
	st.st.ActiveState, st.st.SubState, st.st.MainPID = p.activeState, p.subState, p.mainPID
	if st.known && p.nRestarts > st.nRestarts {
		d := uint64(p.nRestarts - st.nRestarts)
		st.st.Restarts += d
		s.m.restarts.WithLabelValues(name).Add(float64(d))
	}
	st.nRestarts = p.nRestarts
	failedNow := p.subState == "auto-restart" || p.activeState == "failed"
	failedBefore := prev.SubState == "auto-restart" || prev.ActiveState == "failed"
	if st.known && !st.intentional {
		// Every automatic restart follows an exit nobody asked for, even
		// when the readings missed the failed/auto-restart state between.
		f := st.st.Failures
		if failedNow && !failedBefore {
			f++
		}
		// In auto-restart the pending restart is counted through NRestarts
		// (systemd increments it while still in auto-restart); only a final
		// "failed" adds one more.
		bound := st.st.Restarts
		if p.activeState == "failed" {
			bound++
		}
		if bound > f {
			f = bound
		}
		if d := f - st.st.Failures; d > 0 {
			st.st.Failures = f
			s.m.failures.WithLabelValues(name).Add(float64(d))
		}
	}
	st.known = true
	intentional := st.intentional
	active := 0.0
	if p.activeState == "active" {
		active = 1
	}
	s.m.active.WithLabelValues(name).Set(active)
	cur := st.st
	s.mu.Unlock()
	if cur.ActiveState != prev.ActiveState || cur.SubState != prev.SubState || cur.MainPID != prev.MainPID {
		s.log.Debug("unit state", "unit", name, "active_state", cur.ActiveState, "sub_state", cur.SubState,
			"main_pid", cur.MainPID, "restarts", cur.Restarts, "failures", cur.Failures)
		if failedNow && !failedBefore {
			s.log.Info("unit process exited", "unit", name, "sub_state", cur.SubState,
				"exit_status", p.execMainStatus, "requested", intentional)
		}
		if s.notify != nil {
			s.notify(cur)
		}
	}
}

// watch follows property-change signals of registered units, re-reads them
// all every ResyncInterval and after reconnections.
func (s *Supervisor) watch() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.ResyncInterval)
	defer t.Stop()
	refresh := func(names ...string) {
		for _, n := range names {
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ResyncInterval)
			p, err := s.read(ctx, n)
			cancel()
			if err == nil {
				s.observe(n, p)
			}
		}
	}
	all := func() []string {
		s.mu.Lock()
		defer s.mu.Unlock()
		out := make([]string, 0, len(s.units))
		for n := range s.units {
			out = append(out, n)
		}
		return out
	}
	for {
		select {
		case <-s.ctx.Done():
			return
		case u := <-s.updates:
			s.mu.Lock()
			_, ok := s.units[u.UnitName]
			s.mu.Unlock()
			if ok {
				refresh(u.UnitName)
			}
		case err := <-s.subErrs:
			s.log.Debug("subscription", "err", err)
		case <-s.kick:
			refresh(all()...)
		case <-t.C:
			refresh(all()...)
		}
	}
}

// Start starts the unit and returns once it is active and its probe
// passes, or an error: the start job failed, the process exited (quoting
// the unit's journal, e.g. a flag the component rejected), or it was not
// healthy within Config.StartTimeout. term is exported as MASTERD_TERM to
// managed units (0 for units that follow no role). On error the unit is
// left as systemd has it (Restart=always keeps retrying a managed unit); the
// caller decides whether to Stop it. A Stop of the same unit overtakes a
// Start in progress: the Start returns an error at once and the Stop does
// not wait for it.
func (s *Supervisor) Start(ctx context.Context, name string, term uint64) error {
	st, err := s.unit(name)
	if err != nil {
		return err
	}
	// A Stop must never wait for a Start (a role lost while its unit is
	// still starting): Stop cancels this context before taking the lock.
	ctx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	s.mu.Lock()
	st.starts++
	gen := st.starts
	st.abortStart = abort
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if st.starts == gen {
			st.abortStart = nil
		}
		s.mu.Unlock()
	}()
	st.op.Lock()
	defer st.op.Unlock()
	if err := context.Cause(ctx); err != nil && errors.Is(err, errStopped) {
		return fmt.Errorf("units: start %s: %w", name, err)
	}
	t0 := time.Now()
	s.mu.Lock()
	st.intentional = false
	u := st.u
	s.mu.Unlock()

	if u.Definition != nil {
		// Not under StartTimeout: a daemon-reload on a busy host can take
		// seconds and says nothing about the component.
		if err := s.install(ctx, u, term); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	_ = s.do(ctx, func(c *sdbus.Conn) error { return c.ResetFailedUnitContext(ctx, name) })
	// systemd resets NRestarts on a manual start of a stopped unit; starting
	// a unit that already runs changes nothing. Any restart beyond the
	// baseline during the wait means the process exited.
	pre, err := s.read(ctx, name)
	if err != nil {
		return fmt.Errorf("units: start %s: %w", name, err)
	}
	var baseline uint32
	if pre.activeState == "active" || pre.activeState == "reloading" {
		baseline = pre.nRestarts
	}
	jobDone := make(chan string, 1)
	err = s.do(ctx, func(c *sdbus.Conn) error {
		_, err := c.StartUnitContext(ctx, name, "replace", jobDone)
		return err
	})
	if err != nil {
		return fmt.Errorf("units: start %s: %w", name, err)
	}
	var firstStart uint64
	var lastProbe error
	var activeSince time.Time
	var p props
	timeout := func() error {
		if errors.Is(context.Cause(ctx), errStopped) {
			return fmt.Errorf("units: start %s: %w", name, errStopped)
		}
		why := fmt.Sprintf("not healthy within %s (state %s/%s)", s.cfg.StartTimeout, p.activeState, p.subState)
		if lastProbe != nil {
			why += ": last probe: " + lastProbe.Error()
		}
		return s.startError(name, t0, why)
	}
	tick := time.NewTicker(s.cfg.ProbeInterval)
	defer tick.Stop()
	for {
		select {
		case r := <-jobDone:
			if r != "done" {
				why := "start job " + r
				if p, err := s.read(ctx, name); err == nil && p.execMainStart != 0 {
					why += fmt.Sprintf(": process exited with status %d (%s)", p.execMainStatus, p.result)
				}
				return s.startError(name, t0, why)
			}
		default:
		}
		p, err = s.read(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return timeout()
			}
			return fmt.Errorf("units: start %s: %w", name, err)
		}
		s.observe(name, p)
		if firstStart == 0 && p.execMainStart != 0 {
			firstStart = p.execMainStart
		}
		switch {
		case p.activeState == "failed" || p.subState == "auto-restart":
			return s.startError(name, t0, fmt.Sprintf("process exited with status %d (%s)", p.execMainStatus, p.result))
		case p.nRestarts > baseline || (firstStart != 0 && p.execMainStart != firstStart):
			return s.startError(name, t0, fmt.Sprintf("process exited with status %d (%s) and was restarted", p.execMainStatus, p.result))
		case p.activeState == "active" && p.subState == "running":
			if u.Health == nil {
				// Without a probe, "running" must last: a process that
				// exits right after its fork must not count as started.
				if activeSince.IsZero() {
					activeSince = time.Now()
				}
				if time.Since(activeSince) >= s.cfg.Settle {
					s.started(name, t0)
					return nil
				}
				break
			}
			pctx, pcancel := context.WithTimeout(ctx, s.cfg.ProbeTimeout)
			lastProbe = u.Health.Check(pctx)
			pcancel()
			if lastProbe == nil {
				s.started(name, t0)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return timeout()
		case <-tick.C:
		}
	}
}

func (s *Supervisor) started(name string, t0 time.Time) {
	d := time.Since(t0)
	s.m.startDuration.WithLabelValues(name).Observe(d.Seconds())
	s.log.Info("unit started", "unit", name, "seconds", d.Seconds())
}

// startError builds a start error quoting the unit's journal since t0.
func (s *Supervisor) startError(name string, t0 time.Time, why string) error {
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	var j string
	if s.cfg.JournalLines > 0 {
		// journald may lag the exit by a moment.
		for i := 0; i < 10; i++ {
			j, _ = s.journal(ctx, name, t0, s.cfg.JournalLines)
			if strings.TrimSpace(j) != "" {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// One line: the error goes into one log line of the agent. Each journal
	// line with its whitespace collapsed, empty ones dropped, " | " between.
	var lines []string
	for _, l := range strings.Split(j, "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			lines = append(lines, l)
		}
	}
	if j = strings.Join(lines, " | "); j != "" {
		return fmt.Errorf("units: start %s: %s; journal: %s", name, why, j)
	}
	return fmt.Errorf("units: start %s: %s", name, why)
}

// journalctl reads the unit's journal lines since t0 with journalctl.
func (s *Supervisor) journalctl(ctx context.Context, unit string, since time.Time, lines int) (string, error) {
	args := []string{"--no-pager", "-q", "-o", "cat", "-u", unit,
		"--since", "@" + strconv.FormatInt(since.Add(-time.Second).Unix(), 10), "-n", strconv.Itoa(lines)}
	if s.root != "" {
		args = append(args, "--root", s.root)
	}
	out, err := exec.CommandContext(ctx, "journalctl", args...).Output()
	return string(bytes.TrimSpace(out)), err
}

// install writes the unit file (and reloads systemd when it changed) and
// the environment file carrying MASTERD_TERM.
func (s *Supervisor) install(ctx context.Context, u Unit, term uint64) error {
	envFile := filepath.Join(s.cfg.RuntimeDir, strings.TrimSuffix(u.Name, ".service")+".env")
	grace := s.cfg.StopGrace
	if u.LeaderOnly {
		grace = s.cfg.LeaderStopGrace
	}
	text, err := u.Definition.render(envFile, grace)
	if err != nil {
		return fmt.Errorf("units: render %s: %w", u.Name, err)
	}
	if err := writeAtomic(s.root+envFile, []byte(fmt.Sprintf("MASTERD_TERM=%d\n", term)), 0o644); err != nil {
		return fmt.Errorf("units: write %s: %w", envFile, err)
	}
	path := filepath.Join(s.cfg.UnitDir, u.Name)
	old, _ := os.ReadFile(s.root + path)
	if string(old) == text {
		return nil
	}
	if err := writeAtomic(s.root+path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("units: write %s: %w", path, err)
	}
	if err := s.do(ctx, func(c *sdbus.Conn) error { return c.ReloadContext(ctx) }); err != nil {
		return fmt.Errorf("units: daemon-reload for %s: %w", u.Name, err)
	}
	return nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Stop stops the unit and waits until it is inactive: a stop job (SIGTERM
// to the unit's processes), then after the grace (Config.LeaderStopGrace for
// leader-only units, Config.StopGrace otherwise) SIGKILL to every process in
// the unit's cgroup, then up to Config.KillWait for systemd to see it
// inactive. It never waits for systemd's default 90 s stop timeout. Stopping
// an inactive or unknown-to-systemd unit succeeds.
func (s *Supervisor) Stop(ctx context.Context, name string) error {
	st, err := s.unit(name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if st.abortStart != nil {
		st.abortStart(errStopped)
	}
	s.mu.Unlock()
	st.op.Lock()
	defer st.op.Unlock()
	s.mu.Lock()
	st.intentional = true
	leaderOnly := st.u.LeaderOnly
	s.mu.Unlock()
	grace := s.cfg.StopGrace
	if leaderOnly {
		grace = s.cfg.LeaderStopGrace
	}
	t0 := time.Now()
	err = s.do(ctx, func(c *sdbus.Conn) error {
		_, err := c.StopUnitContext(ctx, name, "replace", nil)
		return err
	})
	if err != nil && !isNoSuchUnit(err) {
		return fmt.Errorf("units: stop %s: %w", name, err)
	}
	done, err := s.waitInactive(ctx, name, grace)
	if err != nil {
		return fmt.Errorf("units: stop %s: %w", name, err)
	}
	if !done {
		s.log.Info("unit did not stop within grace, killing its cgroup", "unit", name, "grace_seconds", grace.Seconds())
		err = s.do(ctx, func(c *sdbus.Conn) error {
			return c.KillUnitWithTarget(ctx, name, sdbus.All, int32(syscall.SIGKILL))
		})
		if err != nil {
			return fmt.Errorf("units: stop %s: kill cgroup: %w", name, err)
		}
		done, err = s.waitInactive(ctx, name, s.cfg.KillWait)
		if err != nil {
			return fmt.Errorf("units: stop %s: %w", name, err)
		}
		if !done {
			return fmt.Errorf("units: stop %s: still not inactive %s after SIGKILL", name, s.cfg.KillWait)
		}
	}
	_ = s.do(ctx, func(c *sdbus.Conn) error { return c.ResetFailedUnitContext(ctx, name) })
	d := time.Since(t0)
	s.m.stopDuration.WithLabelValues(name).Observe(d.Seconds())
	s.log.Info("unit stopped", "unit", name, "seconds", d.Seconds())
	return nil
}

// Kill stops the unit without a grace: a stop job (so Restart= does not
// bring it back) and at once SIGKILL to every process in its control group
// (KillUnit who=all; when systemd cannot be reached, cgroup.kill written
// directly), then waits up to Config.KillWait, or until ctx ends, for the
// group to be empty. It is the escalation of a Stop that failed or ran
// out of time; it succeeds when the unit has no processes left.
func (s *Supervisor) Kill(ctx context.Context, name string) error {
	st, err := s.unit(name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if st.abortStart != nil {
		st.abortStart(errStopped)
	}
	st.intentional = true
	s.mu.Unlock()
	// Not under st.op: the Stop this escalates may still hold it, waiting
	// on a systemd that does not answer.
	var errs []error
	err = s.do(ctx, func(c *sdbus.Conn) error {
		_, err := c.StopUnitContext(ctx, name, "replace", nil)
		return err
	})
	if err != nil && !isNoSuchUnit(err) {
		errs = append(errs, fmt.Errorf("stop job: %w", err))
	}
	err = s.do(ctx, func(c *sdbus.Conn) error {
		return c.KillUnitWithTarget(ctx, name, sdbus.All, int32(syscall.SIGKILL))
	})
	if err != nil && !isNoSuchUnit(err) && !isNotActive(err) {
		errs = append(errs, fmt.Errorf("kill cgroup over d-bus: %w", err))
		if kerr := s.writeCgroupKill(ctx, name); kerr != nil {
			errs = append(errs, kerr)
		}
	}
	deadline := time.Now().Add(s.cfg.KillWait)
	for {
		pids, err := s.Processes(ctx, name)
		if err == nil && len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err == nil {
				err = fmt.Errorf("%d processes left (%v)", len(pids), pids)
			}
			return fmt.Errorf("units: kill %s: %w", name, errors.Join(append(errs, err)...))
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// writeCgroupKill kills the unit's cgroup through cgroup.kill (cgroup v2,
// kernel 5.14+), without systemd, at systemd's usual path for the unit.
func (s *Supervisor) writeCgroupKill(ctx context.Context, name string) error {
	dir, err := s.cgroupDir(ctx, name)
	if err != nil {
		dir, err = s.cgroupMount()
		if err != nil {
			return err
		}
		dir = filepath.Join(dir, "system.slice", name)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("write %s/cgroup.kill: %w", dir, err)
	}
	return nil
}

// Processes returns the PIDs (as seen from the supervisor's root) of every
// process in the unit's control group and its sub-groups: empty when the
// unit has no cgroup (stopped and cleaned up) or it is empty. It reads
// cgroup.procs: unlike the unit's state it also sees processes that an
// installed unit with KillMode=process or none leaves behind.
func (s *Supervisor) Processes(ctx context.Context, name string) ([]int, error) {
	dir, err := s.cgroupDir(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("units: processes of %s: %w", name, err)
	}
	if dir == "" {
		return nil, nil
	}
	var pids []int
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // removed while walking: empty
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENODEV) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("units: processes of %s: %w", name, err)
	}
	return pids, nil
}

// cgroupDir returns the directory of the unit's control group ("" when it
// has none), from its ControlGroup property.
func (s *Supervisor) cgroupDir(ctx context.Context, name string) (string, error) {
	var cg string
	err := s.do(ctx, func(c *sdbus.Conn) error {
		p, err := c.GetUnitTypePropertyContext(ctx, name, "Service", "ControlGroup")
		if err != nil {
			return err
		}
		cg, _ = p.Value.Value().(string)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read ControlGroup: %w", err)
	}
	if cg == "" {
		return "", nil
	}
	mnt, err := s.cgroupMount()
	if err != nil {
		return "", err
	}
	return filepath.Join(mnt, cg), nil
}

// cgroupMount finds the hierarchy systemd's ControlGroup paths are
// relative to: cgroup2 at /sys/fs/cgroup (unified), else at
// /sys/fs/cgroup/unified (hybrid), else the name=systemd v1 hierarchy.
func (s *Supervisor) cgroupMount() (string, error) {
	for _, p := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st syscall.Statfs_t
		if err := syscall.Statfs(s.root+p, &st); err == nil && st.Type == cgroup2Magic {
			return s.root + p, nil
		}
	}
	p := s.root + "/sys/fs/cgroup/systemd"
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("find the cgroup hierarchy: %w", err)
	}
	return p, nil
}

// cgroup2Magic is CGROUP2_SUPER_MAGIC, statfs's f_type of a cgroup2 mount.
const cgroup2Magic = 0x63677270

func isNotActive(err error) bool {
	var de dbus.Error
	return errors.As(err, &de) && de.Name == "org.freedesktop.systemd1.NoSuchProcess"
}

// waitInactive polls until the unit is inactive or failed (true), the
// duration passes (false) or ctx ends (error).
func (s *Supervisor) waitInactive(ctx context.Context, name string, d time.Duration) (bool, error) {
	deadline := time.Now().Add(d)
	for {
		p, err := s.read(ctx, name)
		if err != nil {
			return false, err
		}
		s.observe(name, p)
		if (p.activeState == "inactive" || p.activeState == "failed") && p.subState != "auto-restart" {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func isNoSuchUnit(err error) bool {
	var de dbus.Error
	return errors.As(err, &de) && de.Name == "org.freedesktop.systemd1.NoSuchUnit"
}

// Healthy reports whether the unit is active now and its probe passes (one
// probe, bounded by Config.ProbeTimeout). The agent polls it for the
// apiserver's part of this node's eligibility.
func (s *Supervisor) Healthy(ctx context.Context, name string) error {
	st, err := s.unit(name)
	if err != nil {
		return err
	}
	p, err := s.read(ctx, name)
	if err != nil {
		return err
	}
	s.observe(name, p)
	if p.activeState != "active" {
		return fmt.Errorf("units: %s: %s/%s", name, p.activeState, p.subState)
	}
	s.mu.Lock()
	probe := st.u.Health
	s.mu.Unlock()
	if probe == nil {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, s.cfg.ProbeTimeout)
	defer cancel()
	if err := probe.Check(pctx); err != nil {
		return fmt.Errorf("units: %s: unhealthy: %w", name, err)
	}
	return nil
}

// Restart stops the unit (as Stop) and starts it again (as Start).
func (s *Supervisor) Restart(ctx context.Context, name string, term uint64) error {
	if err := s.Stop(ctx, name); err != nil {
		return err
	}
	return s.Start(ctx, name, term)
}
