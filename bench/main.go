// Command bench runs the Go benchmarks of every package and the same
// workloads on Python's multiprocessing (python_bench.py), one after the
// other on this machine, and prints one markdown table of the results and
// their ratios.
//
//	go run ./bench                 # everything, ~4 minutes
//	go run ./bench -only pipe      # the rows whose name contains "pipe"
//
// Ratios are "times better than Python": Python/Go for times, Go/Python for
// rates. Compare only numbers from one run: this machine is noisy.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
)

// A row pairs one Go benchmark metric with one Python workload.
type row struct {
	name   string // Python's workload name
	pkg    string // Go package
	bench  string // Go benchmark function, without "Benchmark"
	metric string // unit reported by the Go benchmark ("ns/op" or a b.ReportMetric unit)
	unit   string // unit of the table row
	scale  float64
	higher bool // higher is better
	what   string
}

var rows = []row{
	{"process_start_join", "./process", "StartJoin", "ns/op", "ms", 1e-6, false, "process start+join, no-op function"},
	{"", "./process", "ExecSelf", "ns/op", "ms", 1e-6, false, "floor: bare exec.Command re-exec of the same binary"},
	{"pipe_pingpong_small", "./pipe", "PingPongSmall", "us/roundtrip", "µs", 1, false, "Send/Recv round trip of a small value"},
	{"pipe_pingpong_bytes", "./pipe", "PingPongBytes", "us/roundtrip", "µs", 1, false, "8-byte SendBytes/RecvBytes round trip"},
	{"pipe_throughput", "./pipe", "Throughput", "MB/s", "MB/s", 1, true, "1 MiB messages over Pipe (socketpair)"},
	{"pipe_throughput_simplex", "./pipe", "ThroughputSimplex", "MB/s", "MB/s", 1, true, "1 MiB messages over Simplex (OS pipe)"},
	{"lock_uncontended", "./lock", "LockUncontended", "pairs/s", "pairs/s", 1, true, "Lock Acquire+Release, uncontended"},
	{"lock_contended", "./lock", "LockContended", "ops/s", "ops/s", 1, true, "Lock, 2 processes: lock, counter++, unlock"},
	{"queue_throughput_1to1", "./queue", "Throughput1to1", "items/s", "items/s", 1, true, "Queue, 1 producer → 1 consumer, small items"},
	{"queue_throughput_4to4", "./queue", "Throughput4to4", "items/s", "items/s", 1, true, "Queue, 4 producers → 4 consumers"},
	{"joinable_queue_throughput_1to1", "./queue", "Joinable1to1", "items/s", "items/s", 1, true, "Joinable, 1 → 1, TaskDone per item"},
	{"queue_latency", "./queue", "PingPong", "us/roundtrip", "µs", 1, false, "Put→Get ping-pong through two queues"},
	{"manager_dict_ops", "./manager", "DictSetGet", "ops/s", "ops/s", 1, true, "manager Dict Set+Get from a child process"},
	{"", "./manager", "DictParallel", "ops/s", "ops/s", 1, true, "manager Dict, many goroutines on one connection"},
	{"", "./manager", "Start", "ns/op", "ms", 1e-6, false, "manager Start to usable"},
	{"pool_map_trivial", "./pool", "MapTrivial", "tasks/s", "tasks/s", 1, true, "pool Map of a trivial task, 200k ints, 2 workers"},
	{"pool_apply_async_trivial", "./pool", "ApplyAsync", "tasks/s", "tasks/s", 1, true, "pool ApplyAsync ×20k, then Get all"},
	{"pool_startup", "./pool", "Startup", "ns/op", "ms", 1e-6, false, "pool New(2 workers) + Close + Join"},
	{"", "./cluster", "ClusterPoolMap", "tasks/s", "tasks/s", 1, true, "cluster pool Map, trivial task, 200k ints, 2 hosts × 1 worker"},
	{"", "./cluster", "ClusterPoolApplyAsync", "tasks/s", "tasks/s", 1, true, "cluster pool ApplyAsync ×20k, then Get all, 2 hosts × 1 worker"},
	{"", "./cluster", "ClusterPoolApply", "p50-ms", "ms", 1, false, "cluster pool Apply round trip, p50"},
}

func main() {
	only := flag.String("only", "", "run only the rows whose workload or benchmark name contains this")
	benchtime := flag.String("benchtime", "1s", "go test -benchtime")
	skipPython := flag.Bool("nopython", false, "skip the Python workloads")
	flag.Parse()
	log.SetFlags(0)
	root := moduleRoot()

	var selected []row
	for _, r := range rows {
		if *only == "" || strings.Contains(r.name, *only) || strings.Contains(r.bench, *only) || strings.Contains(r.pkg, *only) {
			selected = append(selected, r)
		}
	}
	goRes := runGo(root, selected, *benchtime)
	pyRes := map[string]float64{}
	if !*skipPython {
		pyRes = runPython(root, selected)
	}

	fmt.Printf("\n%s, %d CPUs, %s\n\n", runtime.Version(), runtime.NumCPU(), cpuModel())
	fmt.Println("| workload | Go | Python spawn | Python fork | Go vs Python |")
	fmt.Println("|---|---|---|---|---|")
	for _, r := range selected {
		g, ok := goRes[r.pkg+"."+r.bench+"."+r.metric]
		gs := "–"
		if ok {
			g *= r.scale
			gs = format(g) + " " + r.unit
		}
		ps, pf := pyRes[r.name+"/spawn"], pyRes[r.name+"/fork"]
		ratio := "–"
		if ok && g > 0 {
			best := ps
			if pf > 0 && (best == 0 || (r.higher && pf > best) || (!r.higher && pf < best)) {
				best = pf // compare with Python at its best
			}
			if best > 0 {
				x := best / g
				if r.higher {
					x = g / best
				}
				ratio = fmt.Sprintf("%.1f×", x)
			}
		}
		fmt.Printf("| %s | %s | %s | %s | %s |\n", r.what, gs, opt(ps, r.unit), opt(pf, r.unit), ratio)
	}
	fmt.Println("\nGo vs Python: how many times better Go is than Python's better start method (>1: Go wins).")
}

func opt(v float64, unit string) string {
	if v == 0 {
		return "–"
	}
	return format(v) + " " + unit
}

func format(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// runGo runs the selected benchmarks, one package at a time, and returns
// "pkg.Bench.unit" -> value.
func runGo(root string, rs []row, benchtime string) map[string]float64 {
	byPkg := map[string][]string{}
	var pkgs []string
	for _, r := range rs {
		if _, seen := byPkg[r.pkg]; !seen {
			pkgs = append(pkgs, r.pkg)
		}
		byPkg[r.pkg] = append(byPkg[r.pkg], r.bench)
	}
	out := map[string]float64{}
	for _, pkg := range pkgs {
		if _, err := os.Stat(filepath.Join(root, pkg)); err != nil {
			continue
		}
		re := "^Benchmark(" + strings.Join(byPkg[pkg], "|") + ")$"
		cmd := exec.Command("go", "test", "-run", "^$", "-bench", re, "-benchtime", benchtime, "-count", "1", pkg)
		cmd.Dir = root
		cmd.Stderr = os.Stderr
		log.Printf("go test -bench %s %s", re, pkg)
		b, err := cmd.Output()
		os.Stderr.Write(b)
		if err != nil {
			log.Printf("%s: %v", pkg, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
				continue
			}
			name := strings.TrimPrefix(f[0], "Benchmark")
			if i := strings.LastIndexByte(name, '-'); i > 0 {
				name = name[:i]
			}
			for i := 2; i+1 < len(f); i += 2 {
				if v, err := strconv.ParseFloat(f[i], 64); err == nil {
					out[pkg+"."+name+"."+f[i+1]] = v
				}
			}
		}
	}
	return out
}

// runPython runs python_bench.py for the selected workloads.
func runPython(root string, rs []row) map[string]float64 {
	out := map[string]float64{}
	py, err := exec.LookPath("python3")
	if err != nil {
		log.Print("python3 not found: no Python column")
		return out
	}
	funcs := map[string]bool{}
	for _, r := range rs {
		if r.name != "" {
			funcs[pyFunc(r.name)] = true
		}
	}
	var names []string
	for f := range funcs {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		cmd := exec.Command(py, filepath.Join(root, "bench", "python_bench.py"), "--only", f)
		cmd.Stderr = os.Stderr
		log.Printf("python3 bench/python_bench.py --only %s", f)
		b, err := cmd.Output()
		os.Stderr.Write(b)
		if err != nil {
			log.Printf("python %s: %v", f, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Split(sc.Text(), "\t")
			if len(f) == 3 {
				if v, err := strconv.ParseFloat(f[1], 64); err == nil {
					out[f[0]] = v
				}
			}
		}
	}
	return out
}

// pyFunc maps a workload name to the python_bench.py function running it.
func pyFunc(name string) string {
	switch {
	case name == "process_start_join":
		return "start_join"
	case name == "pool_startup":
		return "pool_startup"
	case strings.HasPrefix(name, "pipe_pingpong"):
		return "pingpong"
	case strings.HasPrefix(name, "pipe_throughput"):
		return "throughput"
	case name == "queue_latency":
		return "queue_latency"
	case strings.Contains(name, "queue_throughput"):
		return "queues"
	case strings.HasPrefix(name, "lock"):
		return "locks"
	case strings.HasPrefix(name, "pool"):
		return "pool"
	case strings.HasPrefix(name, "manager"):
		return "manager"
	}
	return name
}

func moduleRoot() string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		log.Fatal("go list -m: ", err)
	}
	return strings.TrimSpace(string(out))
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
