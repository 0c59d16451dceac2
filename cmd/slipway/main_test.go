package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/slipwayhq/slipway/plugins/plugintest"
)

// TestMain makes the test binary double as the slipway command, so that the scripts and the
// crash tests run the real CLI in separate processes.
func TestMain(m *testing.M) {
	testscript.Main(cleanupM{m}, map[string]func(){
		"slipway": func() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// cleanupM removes what the tests built (plugin binaries) once they have run: testscript.Main
// exits the process itself.
type cleanupM struct{ m *testing.M }

func (c cleanupM) Run() int {
	code := c.m.Run()
	plugintest.Cleanup()
	return code
}

// TestScripts runs the CLI scenarios in testdata/script.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("SLIPWAY_ROOT", filepath.Join(env.WorkDir, "root"))
			if err := writeImage(filepath.Join(env.WorkDir, "app.tar")); err != nil {
				return err
			}
			if os.Geteuid() == 0 {
				env.Setenv("ROOT", "1")
			}
			return nil
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "root":
				return os.Geteuid() == 0, nil
			}
			return false, nil
		},
	})
}

func slipwayBin(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("slipway")
	if err != nil {
		t.Fatal(err)
	}
	return p
}
