package api

import (
	"bufio"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"
	"golang.org/x/sys/unix"

	"github.com/slipwayhq/slipway/core"
)

// ping answers HEAD and GET /_ping with the headers clients read.
func (s *Server) ping(w http.ResponseWriter, r *http.Request, _ *route) error {
	h := w.Header()
	h.Add("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Add("Pragma", "no-cache")
	// The classic builder: there is no BuildKit session endpoint to offer.
	h.Set("Builder-Version", "1")
	h.Set("Docker-Experimental", "false")
	h.Set("Swarm", string(swarm.LocalNodeStateInactive))
	if r.Method == http.MethodHead {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	_, err := w.Write([]byte("OK"))
	return err
}

// hostFacts are read once: they do not change while the server runs.
var hostFacts = sync.OnceValue(func() (f struct {
	kernel, machine, os, hostname, goVersion, commit, buildTime string
	memTotal                                                    int64
}) {
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		f.kernel = unix.ByteSliceToString(u.Release[:])
		f.machine = unix.ByteSliceToString(u.Machine[:])
	}
	f.os = osRelease()
	f.hostname, _ = os.Hostname()
	f.goVersion = runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, st := range bi.Settings {
			switch st.Key {
			case "vcs.revision":
				f.commit = st.Value
				if len(f.commit) > 7 {
					f.commit = f.commit[:7]
				}
			case "vcs.time":
				f.buildTime = st.Value
			}
		}
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		f.memTotal = int64(si.Totalram) * int64(si.Unit)
	}
	return f
})

// osRelease returns PRETTY_NAME of /etc/os-release, as docker info shows it.
func osRelease() string {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return "Linux"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			if u, err := strconv.Unquote(v); err == nil {
				return u
			}
			return strings.Trim(v, `"'`)
		}
	}
	return "Linux"
}

func (s *Server) getVersion(w http.ResponseWriter, r *http.Request, _ *route) error {
	f := hostFacts()
	details := map[string]string{
		"ApiVersion":    DefaultVersion,
		"MinAPIVersion": MinVersion,
		"GoVersion":     f.goVersion,
		"GitCommit":     f.commit,
		"Os":            runtime.GOOS,
		"Arch":          runtime.GOARCH,
		"KernelVersion": f.kernel,
		"Experimental":  "false",
	}
	if f.buildTime != "" {
		details["BuildTime"] = f.buildTime
	}
	return writeJSON(w, http.StatusOK, system.VersionResponse{
		Platform:      system.PlatformInfo{Name: "Slipway " + s.version},
		Version:       s.version,
		APIVersion:    DefaultVersion,
		MinAPIVersion: MinVersion,
		Os:            runtime.GOOS,
		Arch:          runtime.GOARCH,
		GitCommit:     f.commit,
		GoVersion:     f.goVersion,
		KernelVersion: f.kernel,
		BuildTime:     f.buildTime,
		Components:    []system.ComponentVersion{{Name: "Engine", Version: s.version, Details: details}},
	})
}

func (s *Server) getInfo(w http.ResponseWriter, r *http.Request, _ *route) error {
	ctx := r.Context()
	f := hostFacts()
	list, err := s.eng.List(ctx, core.ListOptions{All: true})
	if err != nil {
		return err
	}
	nimages := 0
	if st, err := s.imageStore(); err == nil {
		if imgs, err := st.List(ctx); err == nil {
			nimages = len(imgs)
		}
	}
	driver := ""
	for _, c := range list {
		if rec, err := s.eng.Record(ctx, c.ID); err == nil && rec.RootFS != nil {
			driver = rec.RootFS.Driver
			break
		}
	}
	info := system.Info{
		ID:                rootID(s.eng.Root()),
		Containers:        len(list),
		ContainersStopped: len(list), // created containers are never running
		Images:            nimages,
		Driver:            driver,
		DriverStatus:      [][2]string{},
		KernelVersion:     f.kernel,
		OperatingSystem:   f.os,
		OSVersion:         "",
		OSType:            runtime.GOOS,
		Architecture:      f.machine,
		NCPU:              runtime.NumCPU(),
		MemTotal:          f.memTotal,
		DockerRootDir:     s.eng.Root(),
		Name:              f.hostname,
		Labels:            []string{},
		ExperimentalBuild: false,
		ServerVersion:     s.version,
		LoggingDriver:     "json-file",
		CgroupVersion:     cgroupVersion(),
		DefaultRuntime:    "runc",
		Runtimes:          map[string]system.RuntimeWithStatus{"runc": {}},
		Swarm:             swarm.Info{LocalNodeState: swarm.LocalNodeStateInactive},
		SecurityOptions:   []string{},
		Warnings:          []string{},
		NGoroutines:       runtime.NumGoroutine(),
		Isolation:         "",
		CDISpecDirs:       []string{},
	}
	return writeJSON(w, http.StatusOK, info)
}

// rootID derives a stable engine ID from the state root (dockerd keeps a UUID in its root).
func rootID(root string) string {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(root); i++ {
		h ^= uint64(root[i])
		h *= 1099511628211
	}
	return "slipway-" + strconv.FormatUint(h, 16)
}

func cgroupVersion() string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return "2"
	}
	return "1"
}
