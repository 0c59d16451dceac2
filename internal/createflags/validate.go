package createflags

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"regexp"
	"strings"
)

// The checks below run while the flags are parsed, as the docker CLI's do; their messages
// are the CLI's.

const whiteSpaces = " \t"

// checkEnv accepts NAME=VALUE as given; a bare NAME takes its value from the environment of
// this process and, when that has none, is kept bare (the daemon then leaves NAME unset).
func checkEnv(v string) (string, error) {
	k, _, hasValue := strings.Cut(v, "=")
	if k == "" {
		return "", errors.New("invalid environment variable: " + v)
	}
	if hasValue {
		return v, nil
	}
	if ev, ok := os.LookupEnv(k); ok {
		return k + "=" + ev, nil
	}
	return v, nil
}

func checkLabel(v string) (string, error) {
	k, _, _ := strings.Cut(v, "=")
	k = strings.TrimLeft(k, whiteSpaces)
	if k == "" {
		return "", fmt.Errorf("invalid label '%s': empty name", v)
	}
	if strings.ContainsAny(k, whiteSpaces) {
		return "", fmt.Errorf("label '%s' contains whitespaces", k)
	}
	return v, nil
}

// checkLink accepts NAME or NAME:ALIAS.
func checkLink(v string) (string, error) {
	if v == "" {
		return v, errors.New("empty string specified for links")
	}
	if strings.Count(v, ":") > 1 {
		return v, errors.New("bad format for links: " + v)
	}
	return v, nil
}

// checkIP accepts an IP address and returns it in canonical form.
func checkIP(v string) (string, error) {
	if ip := net.ParseIP(strings.TrimSpace(v)); ip != nil {
		return ip.String(), nil
	}
	return "", fmt.Errorf("IP address is not correctly formatted: %s", v)
}

var (
	alphaRegexp  = regexp.MustCompile(`[a-zA-Z]`)
	domainRegexp = regexp.MustCompile(`^(:?(:?[a-zA-Z0-9]|(:?[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9]))(:?\.(:?[a-zA-Z0-9]|(:?[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])))*)\.?\s*$`)
)

// checkDNSSearch accepts a domain, or "." for none.
func checkDNSSearch(v string) (string, error) {
	if v = strings.Trim(v, " "); v == "." {
		return v, nil
	}
	if alphaRegexp.FindString(v) == "" {
		return "", fmt.Errorf("%s is not a valid domain", v)
	}
	if m := domainRegexp.FindStringSubmatch(v); len(m) > 0 && len(m[1]) < 255 {
		return m[1], nil
	}
	return "", fmt.Errorf("%s is not a valid domain", v)
}

// hostGateway is the special --add-host address that the daemon replaces with the host's.
const hostGateway = "host-gateway"

// checkExtraHost accepts NAME:IP or NAME=IP (the IP maybe in brackets, or host-gateway) and
// returns NAME:IP, the form the daemon understands.
func checkExtraHost(v string) (string, error) {
	k, addr, ok := strings.Cut(v, "=")
	if !ok {
		k, addr, ok = strings.Cut(v, ":")
	}
	if !ok || k == "" || strings.Contains(k, ":") {
		return "", fmt.Errorf("bad format for add-host: %q", v)
	}
	if addr != hostGateway {
		if len(addr) > 2 && addr[0] == '[' && addr[len(addr)-1] == ']' {
			addr = addr[1 : len(addr)-1]
		}
		if _, err := checkIP(addr); err != nil {
			return "", fmt.Errorf("invalid IP address in add-host: %q", addr)
		}
	}
	return k + ":" + addr, nil
}

// checkSysctl accepts the namespaced sysctls the CLI lets through.
func checkSysctl(v string) (string, error) {
	k, _, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return "", fmt.Errorf("sysctl '%s' is not allowed", v)
	}
	switch k {
	case "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
		"kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced":
		return v, nil
	}
	if strings.HasPrefix(k, "net.") || strings.HasPrefix(k, "fs.mqueue.") {
		return v, nil
	}
	return "", fmt.Errorf("sysctl '%s' is not allowed", v)
}

// checkAttach accepts stdin, stdout or stderr in any case and returns it in lower case.
func checkAttach(v string) (string, error) {
	s := strings.ToLower(v)
	switch s {
	case "stdin", "stdout", "stderr":
		return s, nil
	}
	return v, errors.New("valid streams are STDIN, STDOUT and STDERR")
}

var deviceCgroupRuleRegexp = regexp.MustCompile(`^[acb] ([0-9]+|\*):([0-9]+|\*) [rwm]{1,3}$`)

func checkDeviceCgroupRule(v string) (string, error) {
	if deviceCgroupRuleRegexp.MatchString(v) {
		return v, nil
	}
	return v, fmt.Errorf("invalid device cgroup format '%s'", v)
}

// validDeviceMode reports whether mode is a non-empty combination of r, w and m, each once.
func validDeviceMode(mode string) bool {
	if mode == "" {
		return false
	}
	seen := map[rune]bool{}
	for _, c := range mode {
		if (c != 'r' && c != 'w' && c != 'm') || seen[c] {
			return false
		}
		seen[c] = true
	}
	return true
}

// checkDevicePath checks a --device value of the form [host-path:]container-path[:mode] and
// returns it with the container path cleaned.
func checkDevicePath(v string) (string, error) {
	if strings.Count(v, ":") > 2 {
		return v, fmt.Errorf("bad format for path: %s", v)
	}
	parts := strings.SplitN(v, ":", 3)
	if parts[0] == "" {
		return v, fmt.Errorf("bad format for path: %s", v)
	}
	var ctrPath string
	switch len(parts) {
	case 1:
		ctrPath = parts[0]
		v = path.Clean(ctrPath)
	case 2:
		if validDeviceMode(parts[1]) {
			ctrPath = parts[0]
			v = path.Clean(ctrPath) + ":" + parts[1]
		} else {
			ctrPath = parts[1]
			v = parts[0] + ":" + path.Clean(ctrPath)
		}
	case 3:
		ctrPath = parts[1]
		if !validDeviceMode(parts[2]) {
			return v, fmt.Errorf("bad mode specified: %s", parts[2])
		}
	}
	if !path.IsAbs(ctrPath) {
		return v, fmt.Errorf("%s is not an absolute path", ctrPath)
	}
	return v, nil
}

// cdiNameRegexp matches a fully qualified CDI device name, vendor.com/class=name.
var cdiNameRegexp = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_.-]*[a-zA-Z0-9])?/[a-zA-Z0-9]([a-zA-Z0-9_-]*[a-zA-Z0-9])?=[a-zA-Z0-9]([a-zA-Z0-9_.:-]*[a-zA-Z0-9])?$`)

// isCDIName reports whether a --device value names a CDI device rather than a path.
func isCDIName(v string) bool { return cdiNameRegexp.MatchString(v) }
