package webrtc_test

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"

	rtc "github.com/custodian/custodian/recorder/webrtc"
)

func TestNTPToTime(t *testing.T) {
	tests := []struct {
		ntp  uint64
		want time.Time
	}{
		{2208988800 << 32, time.Unix(0, 0)},
		{(2208988800+1700000000)<<32 | 1<<31, time.Unix(1700000000, 500_000_000)},
		{(2208988800+1)<<32 | 1<<30, time.Unix(1, 250_000_000)},
	}
	for _, tt := range tests {
		if got := rtc.NTPToTime(tt.ntp); !got.Equal(tt.want) {
			t.Errorf("NTPToTime(%#x) = %v, want %v", tt.ntp, got, tt.want)
		}
	}
}

type rtcpWriterFunc func([]rtcp.Packet) error

func (f rtcpWriterFunc) WriteRTCP(p []rtcp.Packet) error { return f(p) }

func TestKeyframeRequester(t *testing.T) {
	var got []rtcp.Packet
	fail := false
	w := rtcpWriterFunc(func(p []rtcp.Packet) error {
		if fail {
			return errors.New("closed")
		}
		got = append(got, p...)
		return nil
	})
	k := rtc.NewKeyframeRequester(w, 1234, time.Hour)
	if sent, err := k.Request(); !sent || err != nil {
		t.Fatalf("first Request = %v, %v", sent, err)
	}
	if sent, err := k.Request(); sent || err != nil {
		t.Fatalf("second Request within the interval = %v, %v", sent, err)
	}
	if len(got) != 1 || got[0].(*rtcp.PictureLossIndication).MediaSSRC != 1234 || k.Sent() != 1 {
		t.Fatalf("packets %v, Sent %d", got, k.Sent())
	}

	// A failed write does not count and does not throttle the next try.
	k = rtc.NewKeyframeRequester(w, 1, time.Hour)
	fail = true
	if sent, err := k.Request(); sent || err == nil {
		t.Fatalf("Request on a failing writer = %v, %v", sent, err)
	}
	fail = false
	if sent, err := k.Request(); !sent || err != nil || k.Sent() != 1 {
		t.Fatalf("Request after a failure = %v, %v, Sent %d", sent, err, k.Sent())
	}

	// With a tiny interval every request goes out.
	k = rtc.NewKeyframeRequester(w, 2, time.Nanosecond)
	for range 3 {
		time.Sleep(time.Microsecond)
		if _, err := k.Request(); err != nil {
			t.Fatal(err)
		}
	}
	if k.Sent() != 3 {
		t.Fatalf("Sent = %d with a 1ns interval, want 3", k.Sent())
	}
}

type rtcpSeq struct {
	batches [][]rtcp.Packet
	end     error
}

func (r *rtcpSeq) ReadRTCP() ([]rtcp.Packet, interceptor.Attributes, error) {
	if len(r.batches) == 0 {
		return nil, nil, r.end
	}
	b := r.batches[0]
	r.batches = r.batches[1:]
	return b, nil, nil
}

func TestReadRTCP(t *testing.T) {
	src := &rtcpSeq{batches: [][]rtcp.Packet{
		{&rtcp.ReceiverReport{SSRC: 1}},
		{&rtcp.SenderReport{SSRC: 7, NTPTime: (2208988800 + 10) << 32, RTPTime: 4800, PacketCount: 3, OctetCount: 99}, &rtcp.PictureLossIndication{}},
	}, end: io.EOF}
	var srs []rtc.SenderReport
	if err := rtc.ReadRTCP(src, func(sr rtc.SenderReport) { srs = append(srs, sr) }); err != nil {
		t.Fatalf("ReadRTCP at EOF = %v, want nil", err)
	}
	if len(srs) != 1 || srs[0].SSRC != 7 || srs[0].RTPTime != 4800 || !srs[0].NTPTime.Equal(time.Unix(10, 0)) ||
		srs[0].PacketCount != 3 || srs[0].OctetCount != 99 || srs[0].Arrival.IsZero() {
		t.Fatalf("sender reports %+v", srs)
	}
	boom := errors.New("boom")
	if err := rtc.ReadRTCP(&rtcpSeq{end: boom}, nil); !errors.Is(err, boom) {
		t.Fatalf("ReadRTCP error = %v, want wrapped boom", err)
	}
}
