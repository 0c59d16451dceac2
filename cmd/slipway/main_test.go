package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain makes the test binary double as the slipway command, so that the scripts and the
// crash tests run the real CLI in separate processes.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"slipway": func() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
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
