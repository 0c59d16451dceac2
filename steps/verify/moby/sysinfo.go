package moby

import (
	"bufio"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"

	"github.com/containerd/cgroups/v3"
	"github.com/moby/sys/mountinfo"
)

// SysInfo is what the verify stage knows about the host's kernel and cgroups: the same
// facts moby's daemon probes once at start-up (pkg/sysinfo) and checks every create against.
type SysInfo struct {
	// CgroupUnified is true on a cgroup v2 (unified) host; a hybrid host counts as v1, as in moby.
	CgroupUnified bool

	MemoryLimit       bool
	SwapLimit         bool
	MemoryReservation bool
	OomKillDisable    bool
	MemorySwappiness  bool

	CPUShares   bool
	CPUCfs      bool
	CPURealtime bool

	BlkioWeight          bool
	BlkioWeightDevice    bool
	BlkioReadBpsDevice   bool
	BlkioWriteBpsDevice  bool
	BlkioReadIOpsDevice  bool
	BlkioWriteIOpsDevice bool

	// Cpuset is whether the cpuset controller is there; Cpus and Mems are the host's
	// available CPUs and memory nodes in cgroup list form ("0-3", "0").
	Cpuset bool
	Cpus   string
	Mems   string

	PidsLimit        bool
	CgroupNamespaces bool

	// IPv4ForwardingDisabled is /proc/sys/net/ipv4/ip_forward != 1.
	IPv4ForwardingDisabled bool
	// SystemdCgroup is whether moby would use the systemd cgroup driver by default (cgroup
	// v2 and booted with systemd).
	SystemdCgroup bool
	// NumCPU is the number of CPUs usable by the process (runtime.NumCPU, as moby).
	NumCPU int
}

// ProbeSysInfo reads the host's cgroup state the way moby's daemon does: on a cgroup v2 host
// the controllers listed in /sys/fs/cgroup/cgroup.controllers and the effective cpuset files;
// otherwise the cgroup v1 mounts of the current process and the control files they hold.
func ProbeSysInfo() *SysInfo {
	si := &SysInfo{NumCPU: runtime.NumCPU()}
	si.IPv4ForwardingDisabled = !readBool("/proc/sys/net/ipv4/ip_forward")
	if _, err := os.Stat("/proc/self/ns/cgroup"); !os.IsNotExist(err) {
		si.CgroupNamespaces = true
	}
	if cgroups.Mode() == cgroups.Unified {
		si.CgroupUnified = true
		probeV2(si, "/sys/fs/cgroup")
		if fi, err := os.Lstat("/run/systemd/system"); err == nil && fi.IsDir() {
			si.SystemdCgroup = true
		}
		return si
	}
	probeV1(si)
	return si
}

func readBool(p string) bool {
	b, err := os.ReadFile(p)
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func probeV2(si *SysInfo, root string) {
	b, err := os.ReadFile(path.Join(root, "cgroup.controllers"))
	if err != nil {
		return
	}
	ctrl := map[string]bool{}
	for _, c := range strings.Fields(string(b)) {
		ctrl[c] = true
	}
	if ctrl["memory"] {
		si.MemoryLimit = true
		si.MemoryReservation = true
		si.SwapLimit = swapLimitV2(root)
		// cgroup v2 has neither memory.swappiness nor oom_control: moby reports both unsupported.
	}
	if ctrl["cpu"] {
		si.CPUShares = true
		si.CPUCfs = true
	}
	if ctrl["io"] {
		si.BlkioWeight = true
		si.BlkioWeightDevice = true
		si.BlkioReadBpsDevice = true
		si.BlkioWriteBpsDevice = true
		si.BlkioReadIOpsDevice = true
		si.BlkioWriteIOpsDevice = true
	}
	if ctrl["cpuset"] {
		si.Cpuset = true
		si.Cpus = readTrim(path.Join(root, "cpuset.cpus.effective"))
		si.Mems = readTrim(path.Join(root, "cpuset.mems.effective"))
	}
	if ctrl["pids"] {
		si.PidsLimit = true
	}
}

// swapLimitV2 looks for memory.swap.max in the cgroup of the current process.
func swapLimitV2(root string) bool {
	_, g, err := cgroups.ParseCgroupFileUnified("/proc/self/cgroup")
	if err != nil || g == "" {
		return false
	}
	return exists(path.Join(root, g, "memory.swap.max"))
}

func readTrim(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// v1Mounts maps each cgroup v1 subsystem of the current process to its mount point.
func v1Mounts() map[string]string {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil
	}
	defer f.Close()
	subsystems := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 || parts[1] == "" {
			continue
		}
		for _, s := range strings.Split(parts[1], ",") {
			subsystems[s] = false
		}
	}
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup"))
	if err != nil {
		return nil
	}
	mps := map[string]string{}
	for _, mi := range mounts {
		for _, opt := range strings.Split(mi.VFSOptions, ",") {
			if seen, known := subsystems[opt]; known && !seen {
				subsystems[opt] = true
				mps[strings.TrimPrefix(opt, "name=")] = mi.Mountpoint
			}
		}
	}
	return mps
}

func probeV1(si *SysInfo) {
	mps := v1Mounts()
	if mp, ok := mps["memory"]; ok {
		si.MemoryLimit = true
		si.SwapLimit = exists(path.Join(mp, "memory.memsw.limit_in_bytes"))
		si.MemoryReservation = exists(path.Join(mp, "memory.soft_limit_in_bytes"))
		si.OomKillDisable = exists(path.Join(mp, "memory.oom_control"))
		si.MemorySwappiness = exists(path.Join(mp, "memory.swappiness"))
	}
	if mp, ok := mps["cpu"]; ok {
		si.CPUShares = exists(path.Join(mp, "cpu.shares"))
		si.CPUCfs = exists(path.Join(mp, "cpu.cfs_quota_us"))
		si.CPURealtime = exists(path.Join(mp, "cpu.rt_period_us"))
	}
	if mp, ok := mps["blkio"]; ok {
		si.BlkioWeight = exists(path.Join(mp, "blkio.weight"))
		si.BlkioWeightDevice = exists(path.Join(mp, "blkio.weight_device"))
		si.BlkioReadBpsDevice = exists(path.Join(mp, "blkio.throttle.read_bps_device"))
		si.BlkioWriteBpsDevice = exists(path.Join(mp, "blkio.throttle.write_bps_device"))
		si.BlkioReadIOpsDevice = exists(path.Join(mp, "blkio.throttle.read_iops_device"))
		si.BlkioWriteIOpsDevice = exists(path.Join(mp, "blkio.throttle.write_iops_device"))
	}
	if mp, ok := mps["cpuset"]; ok {
		si.Cpuset = true
		si.Cpus = readTrim(path.Join(mp, "cpuset.cpus"))
		si.Mems = readTrim(path.Join(mp, "cpuset.mems"))
	}
	if _, ok := mps["pids"]; ok {
		si.PidsLimit = true
	}
}

// maxCPUs bounds a cpuset list, as moby does since CVE-2018-20699, unless the host has more.
const maxCPUs = 8192

// parseUintList parses a cgroup list ("0-2,7"); values above max (when non-zero) are refused.
func parseUintList(val string, max int) (map[int]struct{}, error) {
	out := map[int]struct{}{}
	if val == "" {
		return out, nil
	}
	bad := errorf("invalid format: %s", val)
	for _, r := range strings.Split(val, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, bad
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, bad
			}
		}
		if max != 0 && b > max {
			return nil, errorf("value of out range, maximum is %d", max)
		}
		for i := a; i <= b; i++ {
			out[i] = struct{}{}
		}
	}
	return out, nil
}

// cpusetAvailable reports whether every element of requested is in available.
func cpusetAvailable(requested, available string) (bool, error) {
	avail, err := parseUintList(available, 0)
	if err != nil {
		avail = map[int]struct{}{}
	}
	max := maxCPUs
	for m := range avail {
		if m > max {
			max = m
		}
	}
	req, err := parseUintList(requested, max)
	if err != nil {
		return false, err
	}
	for k := range req {
		if _, ok := avail[k]; !ok {
			return false, nil
		}
	}
	return true, nil
}

var osStat = os.Stat

func isNotExist(err error) bool { return os.IsNotExist(err) }
