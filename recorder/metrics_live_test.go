package recorder_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/recorder/whip"
)

// metricValue reads one unlabelled metric from the gateway's /metrics.
func metricValue(tb testing.TB, url, name string) float64 {
	tb.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		tb.Fatalf("no %s in /metrics", name)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// TestLiveLossMetrics: custodian_rtp_packets_lost_total counts losses
// while the recording runs, and ends equal to the completeness report.
func TestLiveLossMetrics(t *testing.T) {
	g := startGateway(t, "")
	tok := token(t, g, auth.RoleIngest, "")
	audio, _ := media(t)
	ctx := context.Background()
	pub, err := whip.Publish(ctx, whip.Options{
		URL: g.URL() + "/whip/live-1/p1", Token: tok, Audio: audio, Duration: 4 * time.Second,
		Impairment: whip.Impairment{LossPercent: 10, Seed: 5},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkFor(t, 4*time.Second, 50*time.Millisecond, func() error {
		if v := metricValue(t, g.URL(), "custodian_rtp_packets_lost_total"); v == 0 {
			return fmt.Errorf("no loss counted yet")
		}
		return nil
	})
	select {
	case <-pub.Done():
		t.Fatal("the loss was counted only after the media ended")
	default:
	}
	if err := pub.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rec := waitRecording(t, g, "live-1", "p1")
	c := completeness(t, rec)
	if got := metricValue(t, g.URL(), "custodian_rtp_packets_lost_total"); got != num(c, "packets_lost") || got == 0 {
		t.Errorf("lost counter %v, report packets_lost %v", got, c["packets_lost"])
	}
}
