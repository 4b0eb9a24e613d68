package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// GatewayStats is what the load generator measured of a gateway process
// on the same host (Options.GatewayPID): CPU and memory from /proc,
// counters from its /metrics, UDP drops from the network namespace's
// /proc/net/snmp. The window is the steady state: every session connected,
// none finished.
type GatewayStats struct {
	PID           int       `json:"pid"`
	WindowStart   time.Time `json:"window_start"`
	WindowSeconds float64   `json:"window_seconds"`
	// Sessions and Connections live during the window.
	Sessions    int `json:"sessions"`
	Connections int `json:"connections"`

	CPUSeconds float64 `json:"cpu_seconds"` // gateway user+system CPU in the window
	CPUCores   float64 `json:"cpu_cores"`   // CPUSeconds / WindowSeconds
	// PacketsReceived is custodian_rtp_packets_received_total's increase
	// in the window; CPUMicrosPerPacket the gateway's CPU per packet.
	PacketsReceived    uint64  `json:"packets_received"`
	CPUMicrosPerPacket float64 `json:"cpu_us_per_packet"`

	// RSS before the first session, at the end of the window, and the
	// peak (VmHWM); per session: RSS / sessions, and the increase over
	// the idle RSS / sessions.
	RSSIdleBytes          uint64  `json:"rss_idle_bytes"`
	RSSBytes              uint64  `json:"rss_bytes"`
	RSSPeakBytes          uint64  `json:"rss_peak_bytes"`
	RSSPerSessionKiB      float64 `json:"rss_per_session_kib"`
	RSSAddedPerSessionKiB float64 `json:"rss_added_per_session_kib"`

	// Part sealing (custodian_storage_operation_seconds{op="seal_part"})
	// over the whole run: count and quantiles interpolated in the
	// histogram's buckets (as PromQL's histogram_quantile).
	PartsSealed uint64  `json:"parts_sealed"`
	SealP50MS   float64 `json:"seal_p50_ms"`
	SealP99MS   float64 `json:"seal_p99_ms"`

	// UDP datagrams the kernel dropped in the namespace over the whole
	// run (receive buffer full, other input errors): on loopback, the
	// only way a packet is lost on the wire.
	UDPRcvbufErrors uint64 `json:"udp_rcvbuf_errors"`
	UDPInErrors     uint64 `json:"udp_in_errors"`

	// The machine during the window: all CPUs' busy time in cores, the
	// load generator's own CPU in cores, and the rest (other processes).
	MachineBusyCores float64 `json:"machine_busy_cores"`
	LoadgenCores     float64 `json:"loadgen_cores"`
	OtherCores       float64 `json:"other_cores"`
	LoadAverage      string  `json:"load_average"`

	// Problems lists what could not be measured.
	Problems []string `json:"problems,omitempty"`
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat CPU times (100 on
// every Linux architecture Go supports).
const clockTicks = 100

// procCPU returns a process's user+system CPU time from /proc/PID/stat.
func procCPU(pid string) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	// The command may contain spaces: fields start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	// After ')': state is field 3, utime 14, stime 15 (1-based in proc(5)).
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// procMem returns VmRSS and VmHWM in bytes from /proc/PID/status.
func procMem(pid string) (rss, hwm uint64, err error) {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%s/status: %s: %w", pid, k, err)
		}
		if k == "VmRSS" {
			rss = n * 1024
		} else {
			hwm = n * 1024
		}
	}
	return rss, hwm, sc.Err()
}

// machineBusy returns all CPUs' busy time (everything but idle and
// iowait) from /proc/stat.
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected format")
	}
	var busy uint64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * time.Second / clockTicks, nil
}

// udpErrors returns the namespace's UDP RcvbufErrors and InErrors.
func udpErrors() (rcvbuf, in uint64, err error) {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0, 0, err
	}
	var names []string
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "Udp: ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if i >= len(f) {
				break
			}
			v, _ := strconv.ParseUint(f[i], 10, 64)
			switch n {
			case "RcvbufErrors":
				rcvbuf = v
			case "InErrors":
				in = v
			}
		}
		return rcvbuf, in, nil
	}
	return 0, 0, fmt.Errorf("/proc/net/snmp: no Udp line")
}

// scrape reads the gateway's /metrics into series → value ("name" or
// `name{labels}` exactly as exposed).
func scrape(ctx context.Context, client *http.Client, base string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// histogramQuantile interpolates quantile q (0..1) of a Prometheus
// histogram from its cumulative buckets (le → count), as PromQL's
// histogram_quantile does. It returns NaN without observations.
func histogramQuantile(q float64, buckets map[float64]float64) float64 {
	les := make([]float64, 0, len(buckets))
	for le := range buckets {
		les = append(les, le)
	}
	sort.Float64s(les)
	if len(les) == 0 {
		return math.NaN()
	}
	total := buckets[les[len(les)-1]]
	if total == 0 {
		return math.NaN()
	}
	rank := q * total
	prevLE, prevCount := 0.0, 0.0
	for _, le := range les {
		c := buckets[le]
		if c >= rank {
			if math.IsInf(le, 1) {
				return prevLE // beyond the last finite bucket
			}
			if c == prevCount {
				return le
			}
			return prevLE + (le-prevLE)*(rank-prevCount)/(c-prevCount)
		}
		prevLE, prevCount = le, c
	}
	return les[len(les)-1]
}

// sealHistogram extracts the seal_part histogram's buckets.
func sealHistogram(m map[string]float64) (buckets map[float64]float64, count float64) {
	buckets = map[float64]float64{}
	const prefix = `custodian_storage_operation_seconds_bucket{`
	for k, v := range m {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok || !strings.Contains(rest, `op="seal_part"`) {
			continue
		}
		i := strings.Index(rest, `le="`)
		if i < 0 {
			continue
		}
		le := rest[i+4:]
		le = le[:strings.IndexByte(le, '"')]
		f, err := strconv.ParseFloat(le, 64)
		if le == "+Inf" {
			f, err = math.Inf(1), nil
		}
		if err == nil {
			buckets[f] = v
		}
	}
	return buckets, m[`custodian_storage_operation_seconds_count{op="seal_part"}`]
}

// gwSnapshot is one measurement of the gateway and the machine.
type gwSnapshot struct {
	at          time.Time
	cpu         time.Duration
	self        time.Duration
	busy        time.Duration
	rss, hwm    uint64
	packets     float64
	rcvbuf, inE uint64
}

// snapshot measures the gateway now; problems are appended to st.
func (st *GatewayStats) snapshot(ctx context.Context, client *http.Client, base string) gwSnapshot {
	pid := strconv.Itoa(st.PID)
	s := gwSnapshot{at: time.Now()}
	var err error
	note := func(what string, err error) {
		if err != nil && len(st.Problems) < 10 {
			st.Problems = append(st.Problems, what+": "+err.Error())
		}
	}
	s.cpu, err = procCPU(pid)
	note("gateway cpu", err)
	s.self, err = procCPU("self")
	note("own cpu", err)
	s.busy, err = machineBusy()
	note("machine cpu", err)
	s.rss, s.hwm, err = procMem(pid)
	note("gateway memory", err)
	s.rcvbuf, s.inE, err = udpErrors()
	note("udp counters", err)
	m, err := scrape(ctx, client, base)
	note("metrics", err)
	s.packets = m["custodian_rtp_packets_received_total"]
	return s
}

// window fills in the steady-state figures from two snapshots.
func (st *GatewayStats) window(a, b gwSnapshot, sessions, conns int) {
	wall := b.at.Sub(a.at)
	st.WindowStart = a.at.UTC()
	st.WindowSeconds = wall.Seconds()
	st.Sessions, st.Connections = sessions, conns
	if wall <= 0 {
		return
	}
	st.CPUSeconds = (b.cpu - a.cpu).Seconds()
	st.CPUCores = st.CPUSeconds / st.WindowSeconds
	st.PacketsReceived = uint64(max(b.packets-a.packets, 0))
	if st.PacketsReceived > 0 {
		st.CPUMicrosPerPacket = st.CPUSeconds * 1e6 / float64(st.PacketsReceived)
	}
	st.RSSBytes, st.RSSPeakBytes = b.rss, b.hwm
	if sessions > 0 {
		st.RSSPerSessionKiB = float64(b.rss) / 1024 / float64(sessions)
		st.RSSAddedPerSessionKiB = (float64(b.rss) - float64(st.RSSIdleBytes)) / 1024 / float64(sessions)
	}
	st.MachineBusyCores = (b.busy - a.busy).Seconds() / st.WindowSeconds
	st.LoadgenCores = (b.self - a.self).Seconds() / st.WindowSeconds
	st.OtherCores = max(st.MachineBusyCores-st.CPUCores-st.LoadgenCores, 0)
}

// finish adds what is measured over the whole run: part sealing from
// /metrics, UDP drops since start.
func (st *GatewayStats) finish(ctx context.Context, client *http.Client, base string, start gwSnapshot) {
	end := st.snapshot(ctx, client, base)
	st.UDPRcvbufErrors = end.rcvbuf - start.rcvbuf
	st.UDPInErrors = end.inE - start.inE
	st.RSSPeakBytes = max(st.RSSPeakBytes, end.hwm)
	m, err := scrape(ctx, client, base)
	if err != nil {
		return
	}
	buckets, count := sealHistogram(m)
	st.PartsSealed = uint64(count)
	if q := histogramQuantile(0.5, buckets); !math.IsNaN(q) {
		st.SealP50MS = q * 1000
	}
	if q := histogramQuantile(0.99, buckets); !math.IsNaN(q) {
		st.SealP99MS = q * 1000
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			st.LoadAverage = strings.Join(f[:3], " ")
		}
	}
}
