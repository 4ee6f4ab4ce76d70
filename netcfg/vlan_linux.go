package netcfg

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// createVLAN adds the 802.1Q link v and returns it. While the parent does
// not exist yet the error wraps netlink.LinkNotFoundError, so the caller
// waits for it like for any late NIC. A link of that name created by
// another caller in the meantime is checked like an existing one.
func (s *session) createVLAN(v *VLAN) (netlink.Link, error) {
	parent, err := s.c.h.LinkByName(v.Parent)
	if err != nil {
		return nil, err
	}
	link := &netlink.Vlan{
		LinkAttrs:    netlink.LinkAttrs{Name: v.Name, ParentIndex: parent.Attrs().Index},
		VlanId:       v.ID,
		VlanProtocol: netlink.VLAN_PROTOCOL_8021Q,
	}
	err = s.c.h.LinkAdd(link)
	switch {
	case errors.Is(err, unix.EOPNOTSUPP):
		return nil, fmt.Errorf("vlan %s: create VLAN %d on %s: %w: the kernel has no 802.1Q support (the board must load the 8021q module)", v, v.ID, v.Parent, err)
	case err != nil && !errors.Is(err, unix.EEXIST):
		return nil, fmt.Errorf("vlan %s: create VLAN %d on %s: %w", v, v.ID, v.Parent, err)
	}
	l, err := s.c.h.LinkByName(v.Name)
	if err != nil {
		return nil, fmt.Errorf("vlan %s: look up the new link: %w", v, err)
	}
	if err := s.checkVLAN(l, v); err != nil {
		return nil, err
	}
	s.logf("network: created %s, VLAN %d on %s", v.Name, v.ID, v.Parent)
	return l, nil
}

// checkVLAN reports a link named like v that is something else: another
// VLAN id, another parent, or not a VLAN at all. Configure does not delete
// it, since it did not create it.
func (s *session) checkVLAN(l netlink.Link, v *VLAN) error {
	vl, ok := l.(*netlink.Vlan)
	if !ok {
		return fmt.Errorf("vlan %s: a %s link named %s exists already; rename the VLAN: %s:%d:<name>", v, l.Type(), v.Name, v.Parent, v.ID)
	}
	parent, err := s.c.h.LinkByIndex(vl.ParentIndex)
	if vl.VlanId != v.ID || err != nil || parent.Attrs().Name != v.Parent {
		return fmt.Errorf("vlan %s: %s exists already as another VLAN (id %d, parent index %d); rename the VLAN: %s:%d:<name>",
			v, v.Name, vl.VlanId, vl.ParentIndex, v.Parent, v.ID)
	}
	return nil
}
