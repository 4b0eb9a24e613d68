package webrtc_test

import (
	"encoding/binary"
	"syscall"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/stats"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	pion "github.com/pion/webrtc/v4"
)

// BenchmarkReceiveInterceptors measures the per-packet cost of the receive
// path of interceptor sets, for a VP8 stream that negotiated NACK and
// transport-cc: what a recorder pays per RTP packet before its own code runs.
//
//	none      the bare read (baseline)
//	nack      NACK generator alone
//	rr        receiver reports alone
//	recorder  receiver reports (what NewAPI registers for RoleReceive; the
//	          pipeline sends NACKs itself)
//	nack+rr   NACK generator + receiver reports (the receive role before
//	          the pipeline's NACKs replaced pion's generator)
//	+twcc     recorder + transport-wide CC feedback (WithTWCC)
//	+stats    recorder + pion's stats interceptor
//	default   webrtc.RegisterDefaultInterceptors (NACK both ways, reports
//	          both ways, stats, TWCC)
func BenchmarkReceiveInterceptors(b *testing.B) {
	sets := []struct {
		name string
		add  func(b *testing.B, reg *interceptor.Registry)
	}{
		{"none", func(*testing.B, *interceptor.Registry) {}},
		{"nack", func(b *testing.B, reg *interceptor.Registry) {
			f, err := nack.NewGeneratorInterceptor()
			must(b, err)
			reg.Add(f)
		}},
		{"rr", func(b *testing.B, reg *interceptor.Registry) {
			f, err := report.NewReceiverInterceptor()
			must(b, err)
			reg.Add(f)
		}},
		{"recorder", addRecorder},
		{"nack+rr", func(b *testing.B, reg *interceptor.Registry) {
			f, err := nack.NewGeneratorInterceptor()
			must(b, err)
			reg.Add(f)
			addRecorder(b, reg)
		}},
		{"+twcc", func(b *testing.B, reg *interceptor.Registry) {
			addRecorder(b, reg)
			f, err := twcc.NewSenderInterceptor()
			must(b, err)
			reg.Add(f)
		}},
		{"+stats", func(b *testing.B, reg *interceptor.Registry) {
			addRecorder(b, reg)
			f, err := stats.NewInterceptor()
			must(b, err)
			reg.Add(f)
		}},
		{"default", func(b *testing.B, reg *interceptor.Registry) {
			must(b, pion.RegisterDefaultInterceptors(&pion.MediaEngine{}, reg))
		}},
	}
	for _, set := range sets {
		b.Run(set.name, func(b *testing.B) {
			reg := &interceptor.Registry{}
			set.add(b, reg)
			chain, err := reg.Build("bench")
			must(b, err)
			defer chain.Close()
			chain.BindRTCPWriter(interceptor.RTCPWriterFunc(func([]rtcp.Packet, interceptor.Attributes) (int, error) { return 0, nil }))
			src := newPacketSource(b)
			info := &interceptor.StreamInfo{
				SSRC: 0x1234, ClockRate: 90000, MimeType: pion.MimeTypeVP8, PayloadType: 96,
				RTCPFeedback:        []interceptor.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "transport-cc"}},
				RTPHeaderExtensions: []interceptor.RTPHeaderExtension{{URI: sdp.TransportCCURI, ID: 3}},
			}
			r := chain.BindRemoteStream(info, src)
			buf := make([]byte, 1500)
			b.SetBytes(int64(len(src.pkt)))
			b.ReportAllocs()
			cpu0 := processCPU()
			for b.Loop() {
				if _, _, err := r.Read(buf, nil); err != nil {
					b.Fatal(err)
				}
			}
			// Process CPU time per packet: less disturbed than wall time
			// when other processes compete for the cores.
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			chain.UnbindRemoteStream(info)
		})
	}
}

// processCPU is the user+system CPU time of this process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func addRecorder(b *testing.B, reg *interceptor.Registry) {
	rr, err := report.NewReceiverInterceptor()
	must(b, err)
	reg.Add(rr)
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// packetSource yields a 1,200-byte VP8 RTP packet with increasing sequence
// number, timestamp and transport-cc sequence on every read.
type packetSource struct {
	pkt    []byte
	seq    uint16
	extOff int
}

func newPacketSource(b *testing.B) *packetSource {
	h := rtp.Header{Version: 2, PayloadType: 96, SSRC: 0x1234}
	must(b, h.SetExtension(3, []byte{0, 0}))
	p := rtp.Packet{Header: h, Payload: make([]byte, 1200)}
	raw, err := p.Marshal()
	must(b, err)
	// one-byte extension profile: 4-byte RTP ext header, then ID/len byte, 2 bytes.
	return &packetSource{pkt: raw, extOff: 12 + 4 + 1}
}

func (s *packetSource) Read(buf []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
	s.seq++
	binary.BigEndian.PutUint16(s.pkt[2:], s.seq)
	binary.BigEndian.PutUint32(s.pkt[4:], uint32(s.seq)*3000)
	binary.BigEndian.PutUint16(s.pkt[s.extOff:], s.seq)
	n := copy(buf, s.pkt)
	if a == nil {
		a = interceptor.Attributes{}
	}
	return n, a, nil
}
