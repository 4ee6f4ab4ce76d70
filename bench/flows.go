package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/turn/v4"

	"github.com/relaybox/relaybox/netcfg/nstest"
)

// Secret is the TURN REST shared secret every server is given.
const Secret = "relaybench-rest-secret"

// Realm is every server's realm.
const Realm = "relaybench"

// restCredentials returns TURN REST API credentials for user, valid for an
// hour: "expiry:user" and base64(HMAC-SHA1(Secret, username)).
func restCredentials(user string) (username, password string, err error) {
	return turn.GenerateLongTermTURNRESTCredentials(Secret, user, time.Hour)
}

// Flow is one allocation with a channel bound to the sink: the client's
// socket, the channel number, and pion's client, which keeps the
// allocation, permission and channel refreshed while the generator sends
// from the same socket.
type Flow struct {
	Conn    *net.UDPConn
	Local   netip.AddrPort
	Channel uint16
	Relayed netip.AddrPort

	client *turn.Client
	relay  net.PacketConn
}

// channelWatch is the client's socket as pion's client sees it: it notes
// the channel number of the first ChannelData pion sends, which pion does
// once its ChannelBind has succeeded (it does not say otherwise which
// number it chose).
type channelWatch struct {
	net.PacketConn
	channel atomic.Uint32
}

func (w *channelWatch) WriteTo(b []byte, addr net.Addr) (int, error) {
	if len(b) >= 4 && b[0]&0xC0 == 0x40 { // ChannelData: 0x4000-0x7FFF
		w.channel.CompareAndSwap(0, uint32(binary.BigEndian.Uint16(b)))
	}
	return w.PacketConn.WriteTo(b, addr)
}

// openFlow allocates on server from a new socket in client's namespace
// with REST credentials, and has pion bind a channel to peer by writing to
// it until pion sends ChannelData.
func openFlow(client *nstest.NS, server, peer netip.AddrPort, user string) (*Flow, error) {
	username, password, err := restCredentials(user)
	if err != nil {
		return nil, err
	}
	var conn *net.UDPConn
	err = client.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ClientIP, 0)))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("client socket: %w", err)
	}
	f := &Flow{Conn: conn, Local: conn.LocalAddr().(*net.UDPAddr).AddrPort()}
	watch := &channelWatch{PacketConn: conn}
	f.client, err = turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: server.String(),
		TURNServerAddr: server.String(),
		Username:       username,
		Password:       password,
		Conn:           watch,
		RTO:            100 * time.Millisecond,
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("pion turn client: %w", err)
	}
	if err := f.client.Listen(); err != nil {
		f.Close()
		return nil, fmt.Errorf("pion turn client: %w", err)
	}
	if f.relay, err = f.client.Allocate(); err != nil {
		f.Close()
		return nil, fmt.Errorf("allocate on %v from %v: %w", server, f.Local, err)
	}
	f.Relayed = f.relay.LocalAddr().(*net.UDPAddr).AddrPort()
	// The first write creates the permission and goes as a Send
	// indication while pion binds a channel; later ones go as ChannelData
	// once the binding is confirmed.
	to := net.UDPAddrFromAddrPort(peer)
	probe := []byte("relaybench channel probe")
	for deadline := time.Now().Add(10 * time.Second); watch.channel.Load() == 0; {
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("allocation %v from %v: pion bound no channel to %v within 10s", f.Relayed, f.Local, peer)
		}
		if _, err := f.relay.WriteTo(probe, to); err != nil {
			f.Close()
			return nil, fmt.Errorf("write to %v through allocation %v: %w", peer, f.Relayed, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.Channel = uint16(watch.channel.Load())
	return f, nil
}

// openFlows opens n flows in parallel.
func openFlows(client *nstest.NS, server, peer netip.AddrPort, n int) ([]*Flow, error) {
	flows := make([]*Flow, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { flows[i], errs[i] = openFlow(client, server, peer, fmt.Sprintf("flow%d", i)) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeFlows(flows)
		return nil, err
	}
	return flows, nil
}

// closeFlows releases the flows' allocations (a Refresh with lifetime 0,
// as pion's client does on Close) and closes their sockets, giving up on
// the server's answers after a few seconds.
func closeFlows(flows []*Flow) {
	done := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for _, f := range flows {
			if f != nil {
				wg.Go(f.Close)
			}
		}
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		for _, f := range flows {
			if f != nil {
				f.Conn.Close() // unblocks pion's transactions
			}
		}
	}
}

// Close releases the allocation and closes the socket.
func (f *Flow) Close() {
	if f.relay != nil {
		f.relay.Close()
	}
	if f.client != nil {
		f.client.Close()
	}
	f.Conn.Close()
}
