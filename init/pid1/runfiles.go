package pid1

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/relaybox/relaybox/relay"
)

// runDir holds what init keeps for the console's shell to read: the log
// (console.go), and while a shell is open the status and the settings in
// force, rewritten every runFilesEvery. Files rather than commands: cat
// finds them, and the state stays in PID 1.
const (
	runDir        = "/run/relaybox"
	statusName    = "status"
	configName    = "config"
	statusFile    = runDir + "/" + statusName
	configFile    = runDir + "/" + configName
	runFilesEvery = 2 * time.Second
)

// keepRunFiles rewrites the status and config files in b.shellFiles every
// runFilesEvery until stop is closed.
func (b *box) keepRunFiles(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(runFilesEvery):
		}
		if err := b.writeRunFiles(time.Now()); err != nil {
			b.console.Logf("%v", err)
			return
		}
	}
}

// writeRunFiles writes the status file (the dashboard's status lines, with
// when they were taken) and the config file into b.shellFiles.
func (b *box) writeRunFiles(now time.Time) error {
	// Under b.mu: the shell may be open while run() still boots the box.
	b.mu.Lock()
	lines, settings := b.statusLines(), b.cfg.Settings
	b.mu.Unlock()
	status := fmt.Sprintf("# %s, as of %s; init rewrites this file every %s while a shell is open\n%s\n",
		statusName, now.UTC().Format(time.DateTime+" UTC"), runFilesEvery, strings.Join(lines, "\n"))
	if err := writeAtomic(filepath.Join(b.shellFiles, statusName), status); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(b.shellFiles, configName), configText(settings))
}

// configText is the settings in force, one a line with where it came from,
// secrets hidden.
func configText(settings []relay.Setting) string {
	var s strings.Builder
	s.WriteString("# the settings in force and where each came from (secrets hidden); other keys have their defaults\n")
	for _, st := range settings {
		fmt.Fprintf(&s, "%-40s # %s\n", st.Redacted(), st.Source)
	}
	return s.String()
}

// writeAtomic replaces path with text, so a reader sees the old file or the
// new one, never half of one.
func writeAtomic(path, text string) error {
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
