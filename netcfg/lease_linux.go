package netcfg

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// The timing of the lease loop. A client without a lease asks again after
// retryMin, doubling up to retryMax. Renewal attempts are at least
// minRenewRetry apart (RFC 2131 says 60s, which short leases cannot
// afford).
const (
	retryMin      = 2 * time.Second
	retryMax      = time.Minute
	minRenewRetry = time.Second
)

// forever is the length of an infinite lease.
const forever = time.Duration(math.MaxInt64)

// lease is what DHCPv4 or DHCPv6 leased.
type lease interface {
	timing() leaseTiming
	String() string // the addresses, for log lines
}

// leaseTiming is when to renew (T1), rebind (T2) and give up a lease.
type leaseTiming struct {
	start          time.Time
	t1, t2, length time.Duration // length is forever for an infinite lease
}

func (t leaseTiming) end() time.Time {
	if t.length == forever {
		return time.Time{}
	}
	return t.start.Add(t.length)
}

// dhcpProtocol is DHCPv4 or DHCPv6, as the lease loop uses them.
type dhcpProtocol interface {
	// exchange asks for a new lease (old nil), or renews old with the
	// server that gave it, or with rebind asks any server to extend it;
	// bounded by timeout. A server's refusal wraps errRefused.
	exchange(ctx context.Context, timeout time.Duration, old lease, rebind bool) (lease, error)
	// apply puts l on the link and records it in the Network, removing
	// what old had and l has not; old may be nil.
	apply(l, old lease) error
	// drop removes what old put on the link.
	drop(old lease)
}

// errRefused is wrapped when a DHCP server refuses a lease (DHCPNAK, or a
// DHCPv6 status such as NoBinding): the client then asks for a new one at
// once.
var errRefused = errors.New("the DHCP server refused the lease")

func isRefused(err error) bool { return errors.Is(err, errRefused) }

// dhcpClient keeps one link leased.
type dhcpClient struct {
	s     *session
	p     *linkPlan
	st    *entryState
	what  string // "DHCPv4", "DHCPv6"
	proto dhcpProtocol
	lease lease // what is on the link now; nil without a lease
}

// runDHCP gets a first lease within the DHCP timeout (without carrier it
// does not try), then leaves cl renewing it, or asking again for one, until
// ctx ends.
func (s *session) runDHCP(ctx context.Context, cl *dhcpClient) error {
	err := fmt.Errorf("%w", ErrNoCarrier)
	if cl.p.carrier {
		timeout := s.cfg.dhcpTimeout()
		stop := s.progress(func(d time.Duration) string {
			return fmt.Sprintf("network: %s: waiting for a %s lease (%v of %v)", cl.p.name, cl.what, d, timeout)
		})
		err = cl.acquire(ctx, timeout)
		stop()
	}
	if err != nil {
		err = fmt.Errorf("%s: %s: %w; trying again in the background", cl.p.name, cl.what, err)
		s.n.setProblem(cl.st, cl.what+": no lease yet")
	}
	s.goBackground(cl.p.name+" "+cl.what, func() { cl.run(ctx) })
	return err
}

// acquire asks for a new lease and applies it.
func (cl *dhcpClient) acquire(ctx context.Context, timeout time.Duration) error {
	l, err := cl.proto.exchange(ctx, timeout, nil, false)
	if err != nil {
		return err
	}
	if err := cl.proto.apply(l, cl.lease); err != nil {
		return err
	}
	cl.s.logf("network: %s: %s lease %s, until %s", cl.p.name, cl.what, l, until(l.timing()))
	cl.lease = l
	return nil
}

// run keeps the link leased until ctx ends: renew from T1, rebind from T2,
// and when the lease ends, is refused, or there was none, ask again with
// backoff.
func (cl *dhcpClient) run(ctx context.Context) {
	backoff := retryMin
	failing := false
	for ctx.Err() == nil {
		if cl.lease == nil {
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, retryMax)
			if err := cl.acquire(ctx, cl.s.cfg.dhcpTimeout()); err != nil {
				if !failing && ctx.Err() == nil {
					cl.s.logf("network: %s: %s: %v; trying again", cl.p.name, cl.what, err)
				}
				failing = true
				continue
			}
			failing, backoff = false, retryMin
		}
		t := cl.lease.timing()
		if t.length == forever {
			<-ctx.Done()
			return
		}
		if !sleep(ctx, time.Until(t.start.Add(t.t1))) {
			return
		}
		cl.renew(ctx)
	}
}

// renew extends the current lease from T1: with its server until T2, then
// with any server until it ends. It returns with the lease extended, or
// dropped when it ended or was refused, or when ctx ends.
func (cl *dhcpClient) renew(ctx context.Context) {
	s, name := cl.s, cl.p.name
	old := cl.lease
	t := old.timing()
	t2, end := t.start.Add(t.t2), t.end()
	warned := false
	for ctx.Err() == nil {
		now := time.Now()
		if !now.Before(end) {
			s.logf("network: %s: %s lease %s ended without renewal; asking for a new one", name, cl.what, old)
			cl.drop(cl.what + ": lease ended")
			return
		}
		rebind := !now.Before(t2)
		deadline := t2
		if rebind {
			deadline = end
		}
		try := min(max(deadline.Sub(now)/2, minRenewRetry), end.Sub(now))
		l, err := cl.proto.exchange(ctx, try, old, rebind)
		if err == nil {
			if err = cl.proto.apply(l, old); err == nil {
				cl.lease = l
				s.logf("network: %s: %s lease %s renewed, until %s", name, cl.what, l, until(l.timing()))
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		if isRefused(err) {
			s.logf("network: %s: %s: %v; asking for a new lease", name, cl.what, err)
			cl.drop(cl.what + ": lease refused")
			return
		}
		if !warned {
			s.logf("network: %s: %s: renewing %s: %v; trying again until %s", name, cl.what, old, err, end.Format(time.TimeOnly))
			warned = true
		}
		s.n.setProblem(cl.st, cl.what+": renewal failing")
		sleep(ctx, time.Until(now.Add(try)))
	}
}

func (cl *dhcpClient) drop(problem string) {
	cl.proto.drop(cl.lease)
	cl.lease = nil
	cl.s.n.set(cl.st, result{problem: problem})
}

func until(t leaseTiming) string {
	if t.length == forever {
		return "forever"
	}
	return t.end().Format(time.TimeOnly)
}
