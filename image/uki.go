package image

import (
	"debug/pe"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/relaybox/relaybox/board"
)

// Stub is systemd's UEFI stub for Linux, pinned like the kernel: the disk
// image's \EFI\BOOT\BOOTX64.EFI is this stub with the kernel, the
// initramfs and the command line added as PE sections (a unified kernel
// image). UEFI firmware runs it from a removable medium without any boot
// entry, and nothing on the medium needs a bootloader configuration.
var Stub = board.Package{
	Name:    "systemd-boot-efi",
	Version: "252.39-1~deb12u2",
	SHA256:  "8f2b81bdcfafc466882a0cae460272dbf10d8d97c6a3c1c6ea33038c155a2f5e",
	Arch:    "amd64",
}

// stubFile is the x86-64 stub inside the Stub package.
const stubFile = "usr/lib/systemd/boot/efi/linuxx64.efi.stub"

// fetchStub returns the path of the unpacked x86-64 stub and the .deb it
// came from.
func fetchStub(cacheDir string, logf func(string, ...any)) (stub, deb string, err error) {
	deb, err = fetchDeb(Stub, "UEFI stub", cacheDir, logf)
	if err != nil {
		return "", "", err
	}
	dir, err := unpackDeb(Stub, deb, cacheDir, logf)
	if err != nil {
		return "", "", err
	}
	stub = filepath.Join(dir, stubFile)
	if _, err := os.Stat(stub); err != nil {
		return "", "", fmt.Errorf("UEFI stub: %s has no %s: %w", filepath.Base(deb), stubFile, err)
	}
	return stub, deb, nil
}

// ukiSection is one section added to the stub, in the stub's order:
// systemd-stub finds each by name.
type ukiSection struct {
	name, file string
}

// buildUKI writes a unified kernel image to dst: the stub plus .osrel (what
// a boot menu shows), .cmdline, .linux and .initrd. Each section goes past
// the previous one at a page boundary, as systemd's ukify lays them out;
// objcopy stamps the PE header with the current time, which zeroPETimestamp
// takes out again.
func buildUKI(stub, kernel, initrd, cmdline, osRelease, dst, tmpDir string) error {
	f, err := pe.Open(stub)
	if err != nil {
		return fmt.Errorf("UEFI stub %s: %w", stub, err)
	}
	opt, ok := f.OptionalHeader.(*pe.OptionalHeader64)
	if !ok {
		f.Close()
		return fmt.Errorf("UEFI stub %s is not a PE32+ (x86-64) image", stub)
	}
	var end uint64
	for _, s := range f.Sections {
		end = max(end, uint64(s.VirtualAddress)+uint64(s.VirtualSize))
	}
	f.Close()
	align := max(uint64(opt.SectionAlignment), 4096)

	write := func(name, content string) (string, error) {
		p := filepath.Join(tmpDir, name)
		return p, os.WriteFile(p, []byte(content), 0o644)
	}
	osrelFile, err := write("osrel", osRelease)
	if err != nil {
		return err
	}
	// The stub hands the kernel this text as its command line; a
	// trailing NUL-free, newline-free string is what it expects.
	cmdlineFile, err := write("cmdline", strings.TrimSpace(cmdline))
	if err != nil {
		return err
	}
	args := []string{}
	vma := opt.ImageBase + alignUp(end, align)
	for _, s := range []ukiSection{{".osrel", osrelFile}, {".cmdline", cmdlineFile}, {".linux", kernel}, {".initrd", initrd}} {
		fi, err := os.Stat(s.file)
		if err != nil {
			return err
		}
		args = append(args,
			"--add-section", s.name+"="+s.file,
			"--change-section-vma", fmt.Sprintf("%s=%#x", s.name, vma))
		vma += alignUp(uint64(fi.Size()), align)
	}
	args = append(args, stub, dst)
	if err := run("", "objcopy", args...); err != nil {
		return fmt.Errorf("build the unified kernel image: %w", err)
	}
	b, err := os.ReadFile(dst)
	if err != nil {
		return err
	}
	if err := zeroPETimestamp(b); err != nil {
		return fmt.Errorf("unified kernel image %s: %w", dst, err)
	}
	return os.WriteFile(dst, b, 0o644)
}

// zeroPETimestamp sets a PE image's COFF TimeDateStamp to 0, as the stub
// has it, and recomputes the optional header's checksum. objcopy writes
// the time of the build there and honours no SOURCE_DATE_EPOCH, so two
// builds would differ in these eight bytes alone.
func zeroPETimestamp(b []byte) error {
	if len(b) < 0x40 || string(b[:2]) != "MZ" {
		return errors.New("not a PE image: no MZ header")
	}
	pe := int(binary.LittleEndian.Uint32(b[0x3c:]))
	const coff, checksumInOpt = 4, 64 // after "PE\0\0"; CheckSum's offset in the optional header
	sum := pe + coff + 20 + checksumInOpt
	if pe < 0 || sum+4 > len(b) || string(b[pe:pe+4]) != "PE\x00\x00" {
		return errors.New("not a PE image: no PE header")
	}
	binary.LittleEndian.PutUint32(b[pe+coff+4:], 0)
	binary.LittleEndian.PutUint32(b[sum:], peChecksum(b, sum))
	return nil
}

// peChecksum is the PE image checksum (as IMAGEHLP's CheckSumMappedFile
// computes it): the one's-complement-style sum of the file's 16-bit words,
// its checksum field (at off) left out, plus the file's length.
func peChecksum(b []byte, off int) uint32 {
	var sum uint64
	for i := 0; i < len(b); i += 2 {
		if i == off || i == off+2 {
			continue
		}
		w := uint64(b[i])
		if i+1 < len(b) {
			w |= uint64(b[i+1]) << 8
		}
		sum += w
		sum = (sum & 0xffff) + (sum >> 16)
	}
	sum = (sum & 0xffff) + (sum >> 16)
	return uint32(sum) + uint32(len(b))
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) / a * a }
