//go:build linux

package bpf

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFitClock(t *testing.T) {
	const tick = 4_000_000 // HZ=250
	tests := []struct {
		name    string
		samples []clockSample
		want    jiffyClock
		wantErr string
	}{{
		name:    "steady ticks",
		samples: []clockSample{{1000, 5_000_100}, {1001, 9_000_090}, {1003, 17_000_120}},
		want:    jiffyClock{tickNs: tick, originJiffies: 1003, originNs: 17_000_120},
	}, {
		name: "a sample between the jiffies and the timekeeping update reads a tick low",
		samples: []clockSample{
			{1000, 5_000_100}, {1001, 5_000_100}, {1002, 13_000_140}, {1004, 21_000_100},
		},
		want: jiffyClock{tickNs: tick, originJiffies: 1002, originNs: 13_000_140},
	}, {
		name:    "HZ=300",
		samples: []clockSample{{7, 100}, {10, 100 + 3*3_333_333}},
		want:    jiffyClock{tickNs: 3_333_333, originJiffies: 7, originNs: 100},
	}, {
		name:    "HZ=1000, the first sample highest",
		samples: []clockSample{{7, 2_000_050}, {10, 5_000_010}},
		want:    jiffyClock{tickNs: 1_000_000, originJiffies: 7, originNs: 2_000_050},
	}, {
		name:    "no HZ Linux offers",
		samples: []clockSample{{0, 0}, {3, 3 * 2_000_000}},
		wantErr: "a jiffy lasts 2000000 ns",
	}, {
		name:    "jiffies stood still",
		samples: []clockSample{{5, 0}, {5, 10_000_000}},
		wantErr: "did not advance",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fitClock(tc.samples)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("fitClock: error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(jiffyClock{})); diff != "" {
				t.Errorf("fitClock (-want +got):\n%s", diff)
			}
		})
	}
}

// TestClockTracksKernel calibrates on this kernel, then checks that the
// clock the program computes from jiffies agrees with the kernel's coarse
// monotonic clock, read in the same instant, over several ticks: to a
// tick, as fitClock says, which a wrong tick length or origin would pass
// within these ticks.
func TestClockTracksKernel(t *testing.T) {
	clock, err := calibrateClock()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("tick %d ns (HZ=%d)", clock.tickNs, (1_000_000_000+clock.tickNs/2)/clock.tickNs)
	prog, err := clockSampler()
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	// The two clocks may be a tick apart (fitClock), and the timekeeping
	// update follows the jiffies update by microseconds.
	slack := time.Duration(clock.tickNs) + 200*time.Microsecond
	checked := 0
	for end := time.Now().Add(10 * time.Duration(clock.tickNs)); time.Now().Before(end); time.Sleep(time.Millisecond) {
		s, ok, err := sampleClock(prog)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			continue
		}
		computed := clock.originNs + (s.jiffies-clock.originJiffies)*clock.tickNs
		if d := time.Duration(int64(computed - s.ns)); d > slack || d < -slack {
			t.Errorf("at jiffies %d the program computes %d ns, the kernel's coarse clock reads %d (%s apart)", s.jiffies, computed, s.ns, d)
		}
		checked++
	}
	if checked < 5 {
		t.Fatalf("only %d consistent samples in 10 ticks", checked)
	}
}

// TestLoadCalibratesClock checks that Load hands the program a calibrated
// clock, which the next-hop and counter tests then exercise.
func TestLoadCalibratesClock(t *testing.T) {
	p, err := Load(Config{ListenPort: 3478, PortMin: 49152, PortMax: 65535})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !(p.clock.tickNs > 0 && p.clock.originNs > 0) || !strings.HasPrefix(p.Clock(), "jiffies, HZ=") {
		t.Fatalf("program clock %+v (%s): not calibrated, the program falls back to bpf_ktime_get_coarse_ns", p.clock, p.Clock())
	}
}
