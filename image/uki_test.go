package image

import (
	"encoding/binary"
	"testing"
)

// A PE image as objcopy leaves it: a build time in the COFF header and a
// checksum over it. zeroPETimestamp must take the time out and leave a
// checksum that matches the bytes.
func TestZeroPETimestamp(t *testing.T) {
	const pe = 0x80
	b := make([]byte, 0x400)
	copy(b, "MZ")
	binary.LittleEndian.PutUint32(b[0x3c:], pe)
	copy(b[pe:], "PE\x00\x00")
	for i := pe + 24; i < len(b); i++ {
		b[i] = byte(i * 7)
	}
	const timestamp, checksum = pe + 8, pe + 24 + 64
	binary.LittleEndian.PutUint32(b[timestamp:], 0x6925_0000)
	binary.LittleEndian.PutUint32(b[checksum:], peChecksum(b, checksum))

	if err := zeroPETimestamp(b); err != nil {
		t.Fatalf("zeroPETimestamp: %v", err)
	}
	if got := binary.LittleEndian.Uint32(b[timestamp:]); got != 0 {
		t.Errorf("TimeDateStamp = %#x, want 0", got)
	}
	if got, want := binary.LittleEndian.Uint32(b[checksum:]), peChecksum(b, checksum); got != want {
		t.Errorf("CheckSum = %#x, want %#x for the new bytes", got, want)
	}
	if err := zeroPETimestamp([]byte("#!/bin/sh\n")); err == nil {
		t.Error("zeroPETimestamp(a script) = nil, want an error")
	}
}

// peChecksum of a small buffer, worked by hand: words 0x0201 and 0x0403
// (the checksum field at 4..7 skipped), an odd last byte 0x09, plus the
// length 9.
func TestPEChecksum(t *testing.T) {
	b := []byte{1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff, 9}
	if got, want := peChecksum(b, 4), uint32(0x0201+0x0403+0x09+9); got != want {
		t.Errorf("peChecksum = %#x, want %#x", got, want)
	}
}
