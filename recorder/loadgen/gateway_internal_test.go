package loadgen

import (
	"math"
	"os"
	"strconv"
	"testing"
)

func TestHistogramQuantile(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name    string
		q       float64
		buckets map[float64]float64
		want    float64
	}{
		{"empty", 0.99, map[float64]float64{}, math.NaN()},
		{"no observations", 0.99, map[float64]float64{0.01: 0, inf: 0}, math.NaN()},
		{"all in the first bucket", 0.5, map[float64]float64{0.01: 10, 0.02: 10, inf: 10}, 0.005},
		{"interpolated", 0.99, map[float64]float64{0.005: 50, 0.01: 90, 0.02: 100, inf: 100}, 0.019},
		{"median on a boundary", 0.5, map[float64]float64{0.005: 50, 0.01: 90, inf: 100}, 0.005},
		{"beyond the last bucket", 0.99, map[float64]float64{0.005: 50, inf: 100}, 0.005},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := histogramQuantile(tt.q, tt.buckets)
			if math.IsNaN(tt.want) != math.IsNaN(got) || (!math.IsNaN(got) && math.Abs(got-tt.want) > 1e-9) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	m := map[string]float64{
		`custodian_storage_operation_seconds_bucket{op="seal_part",le="0.005"}`: 3,
		`custodian_storage_operation_seconds_bucket{op="seal_part",le="+Inf"}`:  4,
		`custodian_storage_operation_seconds_bucket{op="upload",le="0.005"}`:    9,
		`custodian_storage_operation_seconds_count{op="seal_part"}`:             4,
	}
	b, n := sealHistogram(m)
	if n != 4 || len(b) != 2 || b[0.005] != 3 || b[math.Inf(1)] != 4 {
		t.Errorf("seal histogram %v, count %v", b, n)
	}
}

func TestProc(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	for i := 0; i < 2e7; i++ { // some CPU time to see
		_ = i * i
	}
	cpu, err := procCPU(pid)
	if err != nil || cpu <= 0 {
		t.Errorf("cpu %v, %v", cpu, err)
	}
	rss, hwm, err := procMem(pid)
	if err != nil || rss == 0 || hwm < rss {
		t.Errorf("rss %d, hwm %d, %v", rss, hwm, err)
	}
	if busy, err := machineBusy(); err != nil || busy <= 0 {
		t.Errorf("machine busy %v, %v", busy, err)
	}
	if _, _, err := udpErrors(); err != nil {
		t.Error(err)
	}
	if _, err := procCPU("999999999"); err == nil {
		t.Error("no error for a missing process")
	}
}
