package units

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

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

func isNotActive(err error) bool {
	var de dbus.Error
	return errors.As(err, &de) && de.Name == "org.freedesktop.systemd1.NoSuchProcess"
}

func isNoSuchUnit(err error) bool {
	var de dbus.Error
	return errors.As(err, &de) && de.Name == "org.freedesktop.systemd1.NoSuchUnit"
}
