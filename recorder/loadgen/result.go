package loadgen

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is what a run did and what the gateway recorded. JSON keys are
// snake_case.
type Result struct {
	Config    RunConfig `json:"config"`
	StartedAt time.Time `json:"started_at"`
	// PublishedUntil is when the last publisher ended; EndedAt includes
	// the read-back.
	PublishedUntil time.Time `json:"published_until"`
	EndedAt        time.Time `json:"ended_at"`

	Sessions   Counts `json:"sessions"`
	Publishers Counts `json:"publishers"`
	// Failures counts failed publishers by reason (http_503, http_401,
	// not_connected, bad_answer, cancelled, error); FailureSamples holds
	// the first few error messages.
	Failures       map[string]int `json:"failures"`
	FailureSamples []string       `json:"failure_samples,omitempty"`

	Setup   Latency `json:"setup_latency"`
	Packets Packets `json:"packets"`

	// Recordings sums the read-back; nil without read-back.
	Recordings *RecordingTotals `json:"recordings,omitempty"`
	// Gateway is the gateway process's measurement (GatewayPID only).
	Gateway *GatewayStats `json:"gateway,omitempty"`

	// PerRecording lists every publisher that connected, with its
	// recording (read-back only).
	PerRecording []Recording `json:"per_recording,omitempty"`
}

// RunConfig echoes the options (never the token).
type RunConfig struct {
	URL             string  `json:"url"`
	Sessions        int     `json:"sessions"`
	Participants    int     `json:"participants_per_session"`
	DurationSeconds float64 `json:"duration_seconds"`
	RampPerSecond   float64 `json:"ramp_per_second"`
	Audio           string  `json:"audio,omitempty"`
	Video           string  `json:"video,omitempty"`
	LossPercent     float64 `json:"loss_percent,omitempty"`
	ReorderPercent  float64 `json:"reorder_percent,omitempty"`
	JitterMS        float64 `json:"jitter_ms,omitempty"`
	Pacers          int     `json:"pacers"`
	SessionPrefix   string  `json:"session_prefix"`
}

// Counts are attempted, connected and failed sessions or publishers. A
// session counts as connected when all its participants connected.
// Rejected are failures with 503 (the gateway shed the load).
type Counts struct {
	Attempted int `json:"attempted"`
	Connected int `json:"connected"`
	Failed    int `json:"failed"`
	Rejected  int `json:"rejected"`
}

// Latency is the distribution of setup latencies (POST to connected) of
// the publishers that connected, in milliseconds.
type Latency struct {
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
	MaxMS float64 `json:"max_ms"`
}

// Packets are the publishers' totals. Sent counts packets the send loops
// wrote; OnWire subtracts what the impairment dropped and adds
// retransmissions: what the publishers' sockets sent.
type Packets struct {
	AudioSent   uint64 `json:"audio_sent"`
	VideoSent   uint64 `json:"video_sent"`
	Sent        uint64 `json:"sent"`
	Dropped     uint64 `json:"dropped_by_impairment"`
	Retransmits uint64 `json:"retransmitted"`
	NACKed      uint64 `json:"nacked"`
	OnWire      uint64 `json:"on_wire"`
	Bytes       uint64 `json:"bytes"`
}

// Recording is one publisher's recording as read back.
type Recording struct {
	SessionID     string `json:"session_id"`
	ParticipantID string `json:"participant_id"`
	RecordingID   string `json:"recording_id,omitempty"`
	Status        string `json:"status"` // complete, failed, ..., or missing
	DurationMS    int64  `json:"duration_ms"`
	// ConnectedMS is how long the publisher was connected: from connected
	// to its DELETE (the media, then the tail); the recording's duration
	// should match it. PacketsSent is what it sent (send loops;
	// retransmissions not included).
	ConnectedMS int64  `json:"connected_ms"`
	PacketsSent uint64 `json:"packets_sent"`
	// From the completeness report.
	PacketsExpected uint64 `json:"packets_expected"`
	PacketsReceived uint64 `json:"packets_received"`
	PacketsLost     uint64 `json:"packets_lost"`
	PacketsLate     uint64 `json:"packets_late"`
	NACKsSent       uint64 `json:"nacks_sent"`
	// Missing is PacketsSent - PacketsReceived: packets the publisher
	// sent that are not in the recording (lost on the way or in the
	// gateway), 0 when everything arrived.
	Missing int64 `json:"missing"`
}

// RecordingTotals sum the read-back.
type RecordingTotals struct {
	Expected int `json:"expected"` // publishers that connected
	Found    int `json:"found"`
	Complete int `json:"complete"`
	Failed   int `json:"failed"` // failed or recovered
	// NotFound counts publishers whose recording was not found (or not
	// final) within the read-back timeout.
	NotFound int `json:"not_found"`

	DurationMinMS  int64 `json:"duration_min_ms"`
	DurationMeanMS int64 `json:"duration_mean_ms"`
	DurationMaxMS  int64 `json:"duration_max_ms"`
	// DurationErrorMaxMS is the largest |duration - connected time|:
	// setup and teardown make a few tens of milliseconds.
	DurationErrorMaxMS int64 `json:"duration_error_max_ms"`

	PacketsSent     uint64 `json:"packets_sent"`
	PacketsReceived uint64 `json:"packets_received"`
	PacketsLost     uint64 `json:"packets_lost"`
	PacketsLate     uint64 `json:"packets_late"`
	NACKsSent       uint64 `json:"nacks_sent"`
	// Missing sums the per-recording Missing of recordings found: sent
	// but not recorded (lost by the gateway or on the loopback wire).
	Missing int64 `json:"missing"`
	// RecordingsWithLoss counts recordings with Missing > 0 or
	// PacketsLost > 0.
	RecordingsWithLoss int `json:"recordings_with_loss"`
}

func newResult(o Options) *Result {
	return &Result{
		Config: RunConfig{
			URL: o.URL, Sessions: o.Sessions, Participants: o.Participants,
			DurationSeconds: o.Duration.Seconds(), RampPerSecond: o.Ramp,
			Audio: mediaName(o.Audio), Video: mediaName(o.Video),
			LossPercent: o.Impairment.LossPercent, ReorderPercent: o.Impairment.ReorderPercent,
			JitterMS: float64(o.Impairment.Jitter) / float64(time.Millisecond),
			Pacers:   o.Pacers, SessionPrefix: o.SessionPrefix,
		},
		Failures: map[string]int{},
	}
}

const maxFailureSamples = 5

// addPublishers counts sessions, publishers, failures, setup latency and
// packets.
func (r *Result) addPublishers(pubs []*pubRun) {
	type sess struct{ all, ok, rejected bool }
	sessions := map[string]*sess{}
	var order []string
	var setups []time.Duration
	for _, p := range pubs {
		if !p.launched {
			continue
		}
		s := sessions[p.session]
		if s == nil {
			s = &sess{all: true}
			sessions[p.session] = s
			order = append(order, p.session)
		}
		r.Publishers.Attempted++
		if p.connected {
			r.Publishers.Connected++
			setups = append(setups, p.setup)
			st := p.stats
			r.Packets.AudioSent += st.Audio.Packets
			r.Packets.VideoSent += st.Video.Packets
			r.Packets.Dropped += st.Audio.Dropped + st.Video.Dropped
			r.Packets.Retransmits += st.Audio.Retransmitted + st.Video.Retransmitted
			r.Packets.NACKed += st.Audio.NACKedPackets + st.Video.NACKedPackets
			r.Packets.Bytes += st.Audio.Bytes + st.Video.Bytes
			continue
		}
		s.all = false
		r.Publishers.Failed++
		reason := failureReason(p.err)
		if reason == "http_503" {
			r.Publishers.Rejected++
			s.rejected = true
		}
		r.Failures[reason]++
		if len(r.FailureSamples) < maxFailureSamples {
			r.FailureSamples = append(r.FailureSamples, p.session+"/"+p.participant+": "+p.err.Error())
		}
	}
	for _, id := range order {
		s := sessions[id]
		r.Sessions.Attempted++
		switch {
		case s.all:
			r.Sessions.Connected++
		default:
			r.Sessions.Failed++
			if s.rejected {
				r.Sessions.Rejected++
			}
		}
	}
	r.Packets.Sent = r.Packets.AudioSent + r.Packets.VideoSent
	r.Packets.OnWire = r.Packets.Sent - r.Packets.Dropped + r.Packets.Retransmits
	setups = sortedDurations(setups)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	r.Setup = Latency{P50MS: ms(percentile(setups, 50)), P99MS: ms(percentile(setups, 99))}
	if len(setups) > 0 {
		r.Setup.MaxMS = ms(setups[len(setups)-1])
	}
}

// addRecordings sums the read-back of publishers that connected.
func (r *Result) addRecordings(pubs []*pubRun, readBack bool) {
	if !readBack {
		return
	}
	t := &RecordingTotals{}
	var durSum int64
	first := true
	for _, p := range pubs {
		if !p.connected {
			continue
		}
		t.Expected++
		rec := p.rec
		if rec == nil {
			rec = &Recording{SessionID: p.session, ParticipantID: p.participant, Status: "missing"}
		}
		rec.ConnectedMS = p.sentFor.Milliseconds()
		rec.PacketsSent = p.stats.Audio.Packets + p.stats.Video.Packets
		if rec.Status == "missing" {
			t.NotFound++
			r.PerRecording = append(r.PerRecording, *rec)
			continue
		}
		t.Found++
		if rec.Status == "complete" {
			t.Complete++
		} else {
			t.Failed++
		}
		rec.Missing = int64(rec.PacketsSent) - int64(rec.PacketsReceived)
		if first || rec.DurationMS < t.DurationMinMS {
			t.DurationMinMS = rec.DurationMS
		}
		if first || rec.DurationMS > t.DurationMaxMS {
			t.DurationMaxMS = rec.DurationMS
		}
		first = false
		durSum += rec.DurationMS
		t.DurationErrorMaxMS = max(t.DurationErrorMaxMS, abs(rec.DurationMS-rec.ConnectedMS))
		t.PacketsSent += rec.PacketsSent
		t.PacketsReceived += rec.PacketsReceived
		t.PacketsLost += rec.PacketsLost
		t.PacketsLate += rec.PacketsLate
		t.NACKsSent += rec.NACKsSent
		t.Missing += rec.Missing
		if rec.Missing > 0 || rec.PacketsLost > 0 {
			t.RecordingsWithLoss++
		}
		r.PerRecording = append(r.PerRecording, *rec)
	}
	if t.Found > 0 {
		t.DurationMeanMS = durSum / int64(t.Found)
	}
	r.Recordings = t
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// WriteTable writes the result as a table for people.
func (r *Result) WriteTable(w io.Writer) error {
	c := r.Config
	media := c.Audio
	if c.Video != "" {
		media = strings.TrimPrefix(media+" + "+c.Video, " + ")
	}
	fmt.Fprintf(w, "custodian loadgen: %d sessions × %d participant(s), %gs each, %s, ramp %g/s, %s\n",
		c.Sessions, c.Participants, c.DurationSeconds, media, c.RampPerSecond, c.URL)
	if c.LossPercent > 0 || c.ReorderPercent > 0 || c.JitterMS > 0 {
		fmt.Fprintf(w, "impairment: loss %g%%, reorder %g%%, jitter %g ms\n", c.LossPercent, c.ReorderPercent, c.JitterMS)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\t attempted\t connected\t failed\t rejected (503)\n")
	fmt.Fprintf(tw, "sessions\t %d\t %d\t %d\t %d\n", r.Sessions.Attempted, r.Sessions.Connected, r.Sessions.Failed, r.Sessions.Rejected)
	fmt.Fprintf(tw, "publishers\t %d\t %d\t %d\t %d\n", r.Publishers.Attempted, r.Publishers.Connected, r.Publishers.Failed, r.Publishers.Rejected)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Failures) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(r.Failures)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, r.Failures[k]))
		}
		fmt.Fprintf(w, "failures: %s\n", strings.Join(parts, ", "))
		for _, s := range r.FailureSamples {
			fmt.Fprintf(w, "  %s\n", s)
		}
	}
	fmt.Fprintf(w, "setup latency: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", r.Setup.P50MS, r.Setup.P99MS, r.Setup.MaxMS)
	p := r.Packets
	fmt.Fprintf(w, "packets sent: %d (audio %d, video %d), %d bytes; dropped by impairment %d, NACKed %d, retransmitted %d\n",
		p.Sent, p.AudioSent, p.VideoSent, p.Bytes, p.Dropped, p.NACKed, p.Retransmits)
	if t := r.Recordings; t != nil {
		fmt.Fprintf(w, "recordings: %d of %d found, %d complete, %d failed, %d not found\n",
			t.Found, t.Expected, t.Complete, t.Failed, t.NotFound)
		fmt.Fprintf(w, "recorded duration: min %.2f s, mean %.2f s, max %.2f s (largest difference from the time connected %d ms)\n",
			float64(t.DurationMinMS)/1000, float64(t.DurationMeanMS)/1000, float64(t.DurationMaxMS)/1000, t.DurationErrorMaxMS)
		fmt.Fprintf(w, "recorded packets: sent %d, received %d, lost %d, late %d, NACKs %d; sent but not recorded %d (%d recordings with loss)\n",
			t.PacketsSent, t.PacketsReceived, t.PacketsLost, t.PacketsLate, t.NACKsSent, t.Missing, t.RecordingsWithLoss)
	}
	if g := r.Gateway; g != nil {
		fmt.Fprintf(w, "gateway (pid %d) over %.1f s with %d sessions: %.2f CPU cores, %.1f µs CPU per received packet (%d packets), RSS %.1f MiB (%.0f KiB per session, %.0f KiB added per session; peak %.1f MiB)\n",
			g.PID, g.WindowSeconds, g.Sessions, g.CPUCores, g.CPUMicrosPerPacket, g.PacketsReceived,
			float64(g.RSSBytes)/(1<<20), g.RSSPerSessionKiB, g.RSSAddedPerSessionKiB, float64(g.RSSPeakBytes)/(1<<20))
		fmt.Fprintf(w, "parts sealed %d: p50 %.1f ms, p99 %.1f ms; kernel UDP drops: receive buffer %d, input errors %d\n",
			g.PartsSealed, g.SealP50MS, g.SealP99MS, g.UDPRcvbufErrors, g.UDPInErrors)
		fmt.Fprintf(w, "machine in the window: %.2f cores busy (gateway %.2f, load generator %.2f, other %.2f); load average %s\n",
			g.MachineBusyCores, g.CPUCores, g.LoadgenCores, g.OtherCores, g.LoadAverage)
		for _, p := range g.Problems {
			fmt.Fprintf(w, "  not measured: %s\n", p)
		}
	}
	fmt.Fprintf(w, "run: %s publishing, %s in all\n", r.PublishedUntil.Sub(r.StartedAt).Round(time.Millisecond),
		r.EndedAt.Sub(r.StartedAt).Round(time.Millisecond))
	return nil
}
