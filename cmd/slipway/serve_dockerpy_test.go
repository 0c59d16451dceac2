package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// debianPython is the Python that Debian's python3-docker package (docker-py) installs into;
// CI installs the package.
const debianPython = "/usr/bin/python3"

// TestServeDockerPy drives slipway serve with docker-py, the Python SDK.
func TestServeDockerPy(t *testing.T) {
	needServeRoot(t)
	if out, err := exec.Command(debianPython, "-c", "import docker").CombinedOutput(); err != nil {
		t.Skipf("skipped: docker-py is not installed for %s (apt-get install python3-docker; CI installs it): %v\n%s", debianPython, err, out)
	}
	s := startServer(t)
	img := filepath.Join(varTemp(t), "app.tar")
	if err := writeImage(img); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(debianPython, "testdata/dockerpy/scenario.py", s.sock, img, testImage).CombinedOutput()
	if err != nil {
		t.Fatalf("docker-py scenario: %v\n%s", err, out)
	}
	got := string(out)
	for _, want := range []string{
		"ping True\n",
		"version 1.50\n",
		"loaded " + testImage + "\n",
		"created 64\n",
		"status created\n",
		"name pyweb\n",
		"labels py\n",
		"env True\n",
		"listed ['pyweb']\n",
		"conflict 409 True\n",
		"missing image 404\n",
		"missing container 404\n",
		"left 0\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("docker-py output lacks %q:\n%s", want, got)
		}
	}
	if !strings.Contains(got, "ip 172.30.0.") {
		t.Errorf("no address on the slipway network:\n%s", got)
	}
	s.stop(t)
}
