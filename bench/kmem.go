package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"

	"github.com/relaybox/relaybox/bpf"
)

// bindingMemory measures the kernel memory of one XDP binding: bpf.Load
// with the map sized for n and for 2n bindings, pinned in scratch
// directories of the bpffs so the bindings map can be opened, and the
// difference of the two maps' memlock (from fdinfo) over n. The map is
// preallocated, so its size does not depend on how full it is. Also
// returns key plus value size times the two entries of a binding, the
// least any layout could take.
func bindingMemory(n int) (memlockPerBinding, keyValuePerBinding float64, err error) {
	var memlock [2]float64
	for i, size := range []int{n, 2 * n} {
		dir := filepath.Join(bpf.PinDir+"-relaybench", fmt.Sprintf("%d-%d", os.Getpid(), i))
		ml, kv, err := loadAndMeasure(dir, size)
		os.RemoveAll(dir)
		if err != nil {
			return 0, 0, err
		}
		memlock[i], keyValuePerBinding = ml, kv
	}
	os.Remove(bpf.PinDir + "-relaybench")
	return (memlock[1] - memlock[0]) / float64(n), keyValuePerBinding, nil
}

func loadAndMeasure(dir string, bindings int) (memlock, keyValuePerBinding float64, err error) {
	p, err := bpf.Load(bpf.Config{ListenPort: ListenPort, PortMin: PortMin, PortMax: PortMax, PinDir: dir, MaxBindings: bindings})
	if err != nil {
		return 0, 0, err
	}
	defer p.Close()
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, "bindings"), nil)
	if err != nil {
		return 0, 0, fmt.Errorf("open the pinned bindings map: %w", err)
	}
	defer m.Close()
	info, err := m.Info()
	if err != nil {
		return 0, 0, fmt.Errorf("bindings map info: %w", err)
	}
	ml, ok := info.Memlock()
	if !ok {
		return 0, 0, errors.New("bindings map info: no memlock in its fdinfo")
	}
	return float64(ml), 2 * float64(m.KeySize()+m.ValueSize()), nil
}
