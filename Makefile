# relaybox — see README.md. Every target that needs Debian packages installs
# them first through .ci/deps (as root), so a fresh Debian 12 machine works.

GO      ?= go
BOARD   ?= qemu
OUT     ?= out
# QEMU's default CPU is an old x86-64: build for the baseline ISA.
export GOAMD64 = v1
export CGO_ENABLED = 0

# make image CONFIG=my.conf: the relaybox.conf of the disk image's RELAYBOX
# partition (default: the documented example, image/relaybox.conf).
# make image BAKED_CONFIG=my.conf: a relaybox.conf built into the initramfs,
# under every other source (for PXE, the only file source).
# make image APPEND='ip=...': kernel parameters the PXE scripts and the UEFI
# image add to the board's. Changing these alone needs make -B image.
CONFIG  ?=
BAKED_CONFIG ?=
APPEND  ?=
# The manifest is written last: it stands for the whole build.
IMAGE   := $(OUT)/$(BOARD)/manifest.txt
SOURCES := $(shell find init relay netcfg bpf image board -name '*.go' -o -name '*.c' -o -name '*.h' -o -name '*.conf') go.mod go.sum

.PHONY: all build deps generate test fuzz diff-long image qemu qemu-usb bench bench-go clean

all: build

build:
	$(GO) build -trimpath -o $(OUT)/bin/ ./init ./relay/cmd/relay ./image/cmd/...

deps:
	@.ci/deps

# Regenerate the committed bpf2go outputs after changing bpf/*.c or *.h.
generate: deps
	$(GO) generate ./bpf

# Every test: unit, namespaces, real kernel, the QEMU appliance boots, and
# a short run of every fuzz target (the seed corpora run in go test itself).
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 80m ./...
	$(MAKE) fuzz

# Each fuzz target of the parsers for FUZZTIME; longer: make fuzz FUZZTIME=10m.
# The default is a count, not a duration: Go 1.26's coordinator can report a
# spurious "context deadline exceeded" when a duration runs out under load
# (golang/go#75804, fixed in Go 1.27); a count has no deadline to race.
FUZZTIME ?= 30000x
fuzz:
	@set -e; for pkg in ./relay/proto ./relay/auth ./relay/policy ./netcfg; do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; done; done

# The XDP program against its Go reference on a million random and mutated
# packets (make test runs a few thousand), from a new seed each time; a
# failure logs the seed that reproduces it.
diff-long: deps
	$(GO) test -count=1 -timeout 30m -run TestDifferential ./bpf -args -diff.packets=1000000 -diff.seed=0

# out/<board>/: vmlinuz, initrd.img, cmdline, pxe/ (PXE bundle),
# relaybox.efi (unified kernel image), relaybox.img (USB/UEFI disk image),
# manifest.txt; rebuilt when a source changes. BOARD=qemu or BOARD=x86-64.
image: $(IMAGE)

$(IMAGE): $(SOURCES) $(CONFIG) $(BAKED_CONFIG) | deps
	$(GO) run ./image/cmd/mkimage -board $(BOARD) -out $(OUT)/$(BOARD)$(if $(CONFIG), -config $(CONFIG))$(if $(BAKED_CONFIG), -baked-config $(BAKED_CONFIG))$(if $(APPEND), -append '$(APPEND)')

# Boot it with the serial console on this terminal (Ctrl-A X quits).
qemu: $(IMAGE)
	$(GO) run ./image/cmd/runqemu -dir $(OUT)/$(BOARD)

# The same, booting relaybox.img as a USB stick on UEFI firmware (OVMF).
qemu-usb: $(IMAGE)
	$(GO) run ./image/cmd/runqemu -dir $(OUT)/$(BOARD) -usb

# Side-by-side benchmarks (bench/, as root, about 11 minutes): relaybox's XDP
# and user-space paths, coturn and pion/turn on one namespace topology;
# Program.Run per XDP path; kernel memory per binding; boot of the qemu board.
# Writes bench/results.md and bench/results.svg. BENCHFLAGS=-quick: a short
# development run, written to out/bench.
BENCHFLAGS ?=
bench: deps
	$(MAKE) image BOARD=qemu
	$(GO) run ./bench/cmd/relaybench -image $(OUT)/qemu $(BENCHFLAGS)

# The Go micro-benchmarks: the TURN core, the relay's sockets, the XDP paths.
bench-go: deps
	$(GO) test -run '^$$' -bench . -benchtime 2s ./bpf ./relay/...

clean:
	rm -rf $(OUT)
