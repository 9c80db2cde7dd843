package units

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/prometheus/client_golang/prometheus"
)

// Unit is a systemd unit the supervisor starts, stops and watches.
type Unit struct {
	// Name is the unit name, e.g. "kube-apiserver.service".
	Name string
	// LeaderOnly marks units that run only while this node leads their role
	// (scheduler, controller-manager): Stop kills their control group at
	// once, without a SIGTERM grace (Config.LeaderKillWait).
	LeaderOnly bool
	// Health is checked after the unit is active; nil means active is enough.
	Health Probe
	// Definition makes the unit managed: masterd writes it under
	// Config.UnitDir (with one daemon-reload for every changed file, see
	// Install), not at every start. Nil: an installed unit (existing-units
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

	installMu sync.Mutex        // serialises Install
	loaded    map[string]string // unit file text systemd loaded, by name; guarded by installMu
	reloads   atomic.Uint64     // daemon-reloads asked for

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
		loaded:  map[string]string{},
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
