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
	limit  string // the c_limits.c result that bounds this row ("" if none)
}

var rows = []row{
	{"process_start_join", "./process", "StartJoin", "ns/op", "ms", 1e-6, false, "process start+join, no-op function", "posix_spawn_static_wait"},
	{"", "./process", "ExecSelf", "ns/op", "ms", 1e-6, false, "floor: bare exec.Command re-exec of the same binary", ""},
	{"pipe_pingpong_small", "./pipe", "PingPongSmall", "us/roundtrip", "µs", 1, false, "Send/Recv round trip of a small value", "socketpair_pingpong_8B"},
	{"pipe_pingpong_bytes", "./pipe", "PingPongBytes", "us/roundtrip", "µs", 1, false, "8-byte SendBytes/RecvBytes round trip", "socketpair_pingpong_8B"},
	{"pipe_throughput", "./pipe", "ThroughputRecvBytes", "MB/s", "MB/s", 1, true, "1 MiB messages over Pipe (socketpair), RecvBytes", "socketpair_throughput_1MiB"},
	{"", "./pipe", "Throughput", "MB/s", "MB/s", 1, true, "1 MiB messages over Pipe (socketpair), RecvBytesInto", "socketpair_throughput_1MiB"},
	{"", "./pipe", "ThroughputRecv", "MB/s", "MB/s", 1, true, "1 MiB []byte values over Pipe (socketpair), Send and Recv", "socketpair_throughput_1MiB"},
	{"pipe_throughput_simplex", "./pipe", "ThroughputSimplexRecvBytes", "MB/s", "MB/s", 1, true, "1 MiB messages over Simplex (OS pipe), RecvBytes", "pipe_throughput_1MiB"},
	{"", "./pipe", "ThroughputSimplex", "MB/s", "MB/s", 1, true, "1 MiB messages over Simplex (OS pipe), RecvBytesInto", "pipe_throughput_1MiB"},
	{"lock_uncontended", "./lock", "LockUncontended", "pairs/s", "pairs/s", 1, true, "Lock Acquire+Release, uncontended", "mutex_pshared_uncontended"},
	{"lock_contended", "./lock", "LockContended", "ops/s", "ops/s", 1, true, "Lock, 2 processes: lock, counter++, unlock", "mutex_pshared_contended"},
	{"queue_throughput_1to1", "./queue", "Throughput1to1", "items/s", "items/s", 1, true, "Queue, 1 producer → 1 consumer, small items", ""},
	{"queue_throughput_4to4", "./queue", "Throughput4to4", "items/s", "items/s", 1, true, "Queue, 4 producers → 4 consumers", ""},
	{"joinable_queue_throughput_1to1", "./queue", "Joinable1to1", "items/s", "items/s", 1, true, "Joinable, 1 → 1, TaskDone per item", ""},
	{"queue_latency", "./queue", "PingPong", "us/roundtrip", "µs", 1, false, "Put→Get ping-pong through two queues", "pipe_pingpong_8B"},
	{"manager_dict_ops", "./manager", "DictSetGet", "ops/s", "ops/s", 1, true, "manager Dict Set+Get from a child process (one round trip per op)", "socketpair_pingpong_8B"},
	{"", "./manager", "DictParallel", "ops/s", "ops/s", 1, true, "manager Dict, many goroutines on one connection", ""},
	{"", "./manager", "Start", "ns/op", "ms", 1e-6, false, "manager Start to usable", ""},
	{"pool_map_trivial", "./pool", "MapTrivial", "tasks/s", "tasks/s", 1, true, "pool Map of a trivial task, 200k ints, 2 workers", ""},
	{"pool_map_trivial", "./pool", "MapPerCall", "tasks/s", "tasks/s", 1, true, "pool Map, 200k ints, 2 workers: median of single calls (as Python's row)", ""},
	{"pool_map_trivial", "./pool", "ImapPerCall", "tasks/s", "tasks/s", 1, true, "pool Imap, 200k ints, 2 workers: median of single calls", ""},
	{"pool_map_trivial", "./pool", "ImapUnorderedPerCall", "tasks/s", "tasks/s", 1, true, "pool ImapUnordered, as above", ""},
	{"pool_apply_async_trivial", "./pool", "ApplyAsync", "tasks/s", "tasks/s", 1, true, "pool ApplyAsync ×20k, then Get all", ""},
	{"pool_startup", "./pool", "Startup", "ns/op", "ms", 1e-6, false, "pool New(2 workers) + Close + Join", ""},
	{"", "./sharedmem", "StartNoArray", "ns/op", "ms", 1e-6, false, "process start+join, no shared memory", ""},
	{"", "./sharedmem", "StartArray1GiB", "ns/op", "ms", 1e-6, false, "process start+join, passing a 1 GiB shared Array", ""},
	{"", "./sharedmem", "SumSlice", "ms/sum", "ms", 1, false, "parent sums an ordinary 256 MiB []float64", ""},
	{"", "./sharedmem", "SumShared2", "ms/sum", "ms", 1, false, "2 workers, one after the other, each sum a 256 MiB shared Array", ""},
	{"", "./sharedmem", "SumShared2Concurrent", "ms/sum", "ms", 1, false, "the same, both workers at once (memory bandwidth shared)", ""},
	{"value_add", "./sharedmem", "ValueAdd", "adds/s", "adds/s", 1, true, "shared Value Add, uncontended (Python: += under get_lock)", ""},
	{"", "./sharedmem", "ValueAddFloat", "adds/s", "adds/s", 1, true, "shared Value[float64] Add, uncontended", ""},
	{"sharedmem_handoff", "./sharedmem", "HandOffShared", "MB/s", "MB/s", 1, true, "64 MiB of float64 to 2 workers to sum, through a shared Array (Python: RawArray)", ""},
	{"queue_handoff", "./sharedmem", "HandOffQueue", "MB/s", "MB/s", 1, true, "the same 64 MiB through a Queue, 1 MiB items", "pipe_throughput_4KiB"},
	{"", "./cluster", "ClusterStart", "ms/start", "ms", 1, false, "cluster: embedded NATS server Start + Connect", ""},
	{"", "./cluster", "ClusterRoundTrip", "p50-us", "µs", 1, false, "cluster Queue Put→Get round trip, p50 (local queue: the ping-pong row)", ""},
	{"", "./cluster", "ClusterThroughput1to1", "items/s", "items/s", 1, true, "cluster Queue, 1 producer process → 1 consumer", ""},
	{"", "./cluster", "ClusterDictAdd", "ops/s", "ops/s", 1, true, "cluster Dict.Add, one client", ""},
	{"dask_map_trivial", "./cluster", "ClusterPoolMap", "tasks/s", "tasks/s", 1, true, "cluster pool Map, trivial task, 200k ints, 2 hosts × 1 worker (Dask: client.map, 2 workers)", ""},
	{"dask_submit_trivial", "./cluster", "ClusterPoolApplyAsync", "tasks/s", "tasks/s", 1, true, "cluster pool ApplyAsync ×20k, then Get all (Dask: submit ×2000, gather)", ""},
	{"dask_task_roundtrip", "./cluster", "ClusterPoolApply", "p50-ms", "ms", 1, false, "cluster pool Apply round trip, p50 (Dask: submit, result)", ""},
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
	limits := runCLimits(root)
	goRes := runGo(root, selected, *benchtime)
	pyRes := map[string]float64{}
	if !*skipPython {
		pyRes = runPython(root, selected)
		for k, v := range runDask(root, selected) {
			pyRes[k] = v
		}
	}

	fmt.Printf("\n%s, %d CPUs, %s\n\n", runtime.Version(), runtime.NumCPU(), cpuModel())
	fmt.Println("| workload | Go | Python spawn | Python fork | Go vs Python | C limit | Go / limit |")
	fmt.Println("|---|---|---|---|---|---|---|")
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
		lim, vsLim := "–", "–"
		if l, ok := limits[r.limit]; ok {
			l.value = convert(l.value, l.unit, r.unit)
			lim = format(l.value) + " " + r.unit
			if g > 0 {
				x := g / l.value
				if !r.higher {
					x = l.value / g
				}
				vsLim = fmt.Sprintf("%.2f", x)
			}
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %s |\n", r.what, gs, opt(ps, r.unit), opt(pf, r.unit), ratio, lim, vsLim)
	}
	fmt.Println("\nGo vs Python: how many times better Go is than Python's better start method (>1: Go wins).")
	fmt.Println("C limit: the same mechanism driven by a C program (bench/c/c_limits.c) in this run; Go / limit: the")
	fmt.Println("fraction of it Go reaches (1 = at the limit; above 1 where Go does less work than the C loop, e.g.")
	fmt.Println("a Conn that reads a whole message in one call).")
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
		dir, target := root, pkg
		if _, err := os.Stat(filepath.Join(root, pkg, "go.mod")); err == nil {
			dir, target = filepath.Join(root, pkg), "." // a nested module (cluster)
		}
		cmd := exec.Command("go", "test", "-run", "^$", "-bench", re, "-benchtime", benchtime, "-count", "1", target)
		cmd.Dir = dir
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

// A cLimit is one result of c_limits.c.
type cLimit struct {
	value float64
	unit  string
}

// runCLimits builds bench/c/c_limits.c (gcc -O2 -static) and runs it once,
// so that every row is compared with the limit of its mechanism measured in
// the same run. Without gcc the column stays empty.
func runCLimits(root string) map[string]cLimit {
	out := map[string]cLimit{}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		log.Print("gcc not found: no C limit column")
		return out
	}
	dir, err := os.MkdirTemp("", "c_limits")
	if err != nil {
		log.Print(err)
		return out
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "c_limits")
	src := filepath.Join(root, "bench", "c", "c_limits.c")
	if b, err := exec.Command(gcc, "-O2", "-static", "-o", bin, src, "-lpthread").CombinedOutput(); err != nil {
		log.Printf("gcc %s: %v\n%s", src, err, b)
		return out
	}
	log.Print("bench/c/c_limits (about 15 s)")
	cmd := exec.Command(bin)
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		log.Printf("c_limits: %v", err)
	}
	results(b, func(name string, v float64, unit string) { out[name] = cLimit{v, unit} })
	return out
}

// results calls f for each "name<TAB>value<TAB>unit" line of b: what
// c_limits.c, python_bench.py and dask_bench.py print.
func results(b []byte, f func(name string, v float64, unit string)) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		fs := strings.Split(sc.Text(), "\t")
		if len(fs) == 3 {
			if v, err := strconv.ParseFloat(fs[1], 64); err == nil {
				f(fs[0], v, fs[2])
			}
		}
	}
}

// convert expresses a c_limits.c result in a table row's unit: a time in
// milliseconds, or a round trip's time as the operations per second of a
// row whose every operation is one round trip.
func convert(v float64, from, to string) float64 {
	switch {
	case from == "us" && to == "ms":
		return v * 1e-3
	case strings.HasPrefix(from, "us") && to == "ops/s":
		return 1e6 / v
	}
	return v
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
		if r.name != "" && !strings.HasPrefix(r.name, "dask_") {
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
		results(b, func(name string, v float64, _ string) { out[name] = v })
	}
	return out
}

// runDask runs dask_bench.py, with the system python3 (Debian's
// python3-distributed), when a selected row compares with Dask. Its rows
// are named dask_*; their values go in the "Python spawn" column.
func runDask(root string, rs []row) map[string]float64 {
	out := map[string]float64{}
	want := false
	for _, r := range rs {
		want = want || strings.HasPrefix(r.name, "dask_")
	}
	if !want {
		return out
	}
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import distributed").Run(); err != nil {
		log.Print("no dask.distributed for /usr/bin/python3 (apt-get install python3-distributed): no Dask rows")
		return out
	}
	cmd := exec.Command(py, filepath.Join(root, "bench", "dask_bench.py"), "2000")
	log.Print("/usr/bin/python3 bench/dask_bench.py 2000 (about a minute)")
	b, err := cmd.Output()
	os.Stderr.Write(b)
	if err != nil {
		log.Printf("dask: %v", err)
	}
	results(b, func(name string, v float64, unit string) {
		if unit == "us" {
			v /= 1000 // the rows are in ms
		}
		out[name+"/spawn"] = v
	})
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
	case strings.HasSuffix(name, "_handoff"):
		return "handoff"
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
