package webrtc

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/sdp/v3"
	pion "github.com/pion/webrtc/v4"

	"github.com/custodian/custodian/config"
)

// Role selects the interceptors and RTCP behaviour of an API.
type Role int

const (
	// RoleReceive is the recorder (WHIP ingest, WHEP pull): RTCP receiver
	// reports only. Sender reports arrive through ReadRTCP. There is no NACK
	// generator: the recorder's pipeline sends NACKs itself, from its
	// jitter buffer, which knows how long a missing packet is still worth
	// asking for (pion's generator would NACK the same losses again, and
	// every lost packet would be retransmitted twice).
	RoleReceive Role = iota
	// RoleSend is a publisher (recorder/whip, the load generator): NACK
	// responder (retransmissions) and RTCP sender reports, so the receiver
	// can map RTP time to the sender's wall clock.
	RoleSend
)

func (r Role) String() string {
	switch r {
	case RoleReceive:
		return "receive"
	case RoleSend:
		return "send"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// Option configures NewAPI.
type Option func(*options)

type options struct {
	role     Role
	log      *slog.Logger
	logMin   slog.Level
	extra    []interceptor.Factory
	twcc     bool
	noNACKRe bool
	settings []func(*pion.SettingEngine)
}

// WithRole selects receive (default) or send interceptors.
func WithRole(r Role) Option { return func(o *options) { o.role = r } }

// WithLogger sends pion's log messages at or above min to log (see
// NewLoggerFactory). Without it pion logs nothing.
func WithLogger(log *slog.Logger, min slog.Level) Option {
	return func(o *options) { o.log, o.logMin = log, min }
}

// WithInterceptor registers extra interceptors nearest the network: their
// BindLocalStream writers see packets after the role's interceptors (NACK
// responder, sender reports), their BindRTCPReader readers see RTCP first.
// recorder/whip uses it for impairments.
func WithInterceptor(f ...interceptor.Factory) Option {
	return func(o *options) { o.extra = append(o.extra, f...) }
}

// WithTWCC adds transport-wide congestion-control feedback on the receive
// side (header extension, transport-cc feedback and its interceptor). A
// recorder does not need it, and it costs CPU per packet (see docs/webrtc.md),
// but without any congestion feedback a browser publisher ramps its video
// bitrate up only from receiver-report loss figures.
func WithTWCC() Option { return func(o *options) { o.twcc = true } }

// WithoutNACKResponder leaves the NACK responder out of the send role: the
// publisher never retransmits (recorder/whip's NoRetransmit impairment).
func WithoutNACKResponder() Option { return func(o *options) { o.noNACKRe = true } }

// WithSettings runs f on the SettingEngine after NewAPI applied the
// configuration: an escape hatch for tests and special deployments (ICE
// timeouts, a virtual network).
func WithSettings(f func(*pion.SettingEngine)) Option {
	return func(o *options) { o.settings = append(o.settings, f) }
}

// API is a pion API built from config.WebRTC, plus the resources it owns (the
// single-port UDP mux). Close it after every PeerConnection made from it.
type API struct {
	*pion.API
	role Role
	mux  *ice.MultiUDPMuxDefault
}

// Close releases the UDP mux, if any.
func (a *API) Close() error {
	if a.mux == nil {
		return nil
	}
	if err := a.mux.Close(); err != nil {
		return fmt.Errorf("webrtc: close udp mux: %w", err)
	}
	return nil
}

// Role is the role the API was built for.
func (a *API) Role() Role { return a.role }

// MuxAddrs returns the local addresses of the single-port UDP mux, or nil
// when udp_mux_port is 0.
func (a *API) MuxAddrs() []net.Addr {
	if a.mux == nil {
		return nil
	}
	return a.mux.GetListenAddresses()
}

// NewAPI builds a pion API for cfg. ICE: host candidates only (plus the
// operator's NAT 1:1 addresses in their place), UDP over IPv4 and IPv6, no
// mDNS, no TCP, loopback only when cfg.IncludeLoopback; gathering restricted
// to cfg.Interfaces and cfg.IPs when set; ephemeral ports from
// [cfg.UDPPortMin, cfg.UDPPortMax], or every peer on cfg.UDPMuxPort. Media:
// the codecs of SupportedCodecs, DTLS-SRTP only. Interceptors: see Role.
func NewAPI(cfg config.WebRTC, opts ...Option) (*API, error) {
	o := options{role: RoleReceive, logMin: slog.LevelWarn}
	for _, opt := range opts {
		opt(&o)
	}
	lf := NewLoggerFactory(o.log, o.logMin)

	me := &pion.MediaEngine{}
	if err := registerCodecs(me, o.role == RoleReceive && o.twcc); err != nil {
		return nil, fmt.Errorf("webrtc: register codecs: %w", err)
	}
	reg := &interceptor.Registry{}
	for _, f := range o.extra {
		reg.Add(f)
	}
	if err := registerInterceptors(me, reg, o, lf); err != nil {
		return nil, fmt.Errorf("webrtc: register interceptors: %w", err)
	}

	se := pion.SettingEngine{LoggerFactory: lf}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]pion.NetworkType{pion.NetworkTypeUDP4, pion.NetworkTypeUDP6})
	se.SetIncludeLoopbackCandidate(cfg.IncludeLoopback)
	ifFilter, ipFilter := filters(cfg)
	if ifFilter != nil {
		se.SetInterfaceFilter(ifFilter)
	}
	if ipFilter != nil {
		se.SetIPFilter(ipFilter)
	}
	if len(cfg.NAT1To1IPs) > 0 {
		rules, err := natRules(cfg.NAT1To1IPs)
		if err != nil {
			return nil, err
		}
		if err := se.SetICEAddressRewriteRules(rules...); err != nil {
			return nil, fmt.Errorf("webrtc: nat_1to1_ips: %w", err)
		}
	}
	if cfg.UDPPortMin != 0 || cfg.UDPPortMax != 0 {
		if err := se.SetEphemeralUDPPortRange(cfg.UDPPortMin, cfg.UDPPortMax); err != nil {
			return nil, fmt.Errorf("webrtc: udp port range %d-%d: %w", cfg.UDPPortMin, cfg.UDPPortMax, err)
		}
	}
	api := &API{role: o.role}
	if cfg.UDPMuxPort != 0 {
		muxOpts := []ice.UDPMuxFromPortOption{
			ice.UDPMuxFromPortWithLogger(lf.NewLogger("udp_mux")),
			ice.UDPMuxFromPortWithNetworks(ice.NetworkTypeUDP4, ice.NetworkTypeUDP6),
			// One socket takes every call's packets: a default-sized
			// receive buffer (about 200 KiB) overflows at a few hundred
			// calls. The kernel caps this at net.core.rmem_max.
			ice.UDPMuxFromPortWithReadBufferSize(muxReadBuffer),
		}
		if ifFilter != nil {
			muxOpts = append(muxOpts, ice.UDPMuxFromPortWithInterfaceFilter(ifFilter))
		}
		if ipFilter != nil {
			muxOpts = append(muxOpts, ice.UDPMuxFromPortWithIPFilter(ipFilter))
		}
		if cfg.IncludeLoopback {
			muxOpts = append(muxOpts, ice.UDPMuxFromPortWithLoopback())
		}
		mux, err := ice.NewMultiUDPMuxFromPort(cfg.UDPMuxPort, muxOpts...)
		if err != nil {
			return nil, fmt.Errorf("webrtc: udp mux on port %d: %w", cfg.UDPMuxPort, err)
		}
		api.mux = mux
		se.SetICEUDPMux(mux)
	}
	for _, f := range o.settings {
		f(&se)
	}
	api.API = pion.NewAPI(pion.WithMediaEngine(me), pion.WithInterceptorRegistry(reg), pion.WithSettingEngine(se))
	return api, nil
}

// muxReadBuffer is the receive buffer asked for the single-port UDP mux's
// socket (SO_RCVBUF; the kernel caps it at net.core.rmem_max, so raise that
// sysctl too on a busy gateway).
const muxReadBuffer = 8 << 20

// filters turns cfg.Interfaces and cfg.IPs into pion's gathering filters
// (nil when unrestricted).
func filters(cfg config.WebRTC) (ifFilter func(string) bool, ipFilter func(net.IP) bool) {
	if len(cfg.Interfaces) > 0 {
		names := slices.Clone(cfg.Interfaces)
		ifFilter = func(name string) bool { return slices.Contains(names, name) }
	}
	if len(cfg.IPs) > 0 {
		var ips []net.IP
		for _, s := range cfg.IPs {
			if ip := net.ParseIP(s); ip != nil {
				ips = append(ips, ip)
			}
		}
		ipFilter = func(ip net.IP) bool {
			return slices.ContainsFunc(ips, ip.Equal)
		}
	}
	return ifFilter, ipFilter
}

// ErrBadNATIP is returned by NewAPI for an nat_1to1_ips entry that is not an
// IP address.
var ErrBadNATIP = errors.New("webrtc: nat_1to1_ips entry is not an IP address")

// natRules maps every local host candidate to the configured public address of
// its family (one rule per family), replacing the local address in the
// candidate: 1:1 NAT as on a cloud VM with a public IP.
func natRules(ips []string) ([]pion.ICEAddressRewriteRule, error) {
	var v4, v6 []string
	for _, s := range ips {
		ip := net.ParseIP(s)
		switch {
		case ip == nil:
			return nil, fmt.Errorf("%w: %q", ErrBadNATIP, s)
		case ip.To4() != nil:
			v4 = append(v4, s)
		default:
			v6 = append(v6, s)
		}
	}
	var rules []pion.ICEAddressRewriteRule
	for _, ext := range [][]string{v4, v6} {
		if len(ext) > 0 {
			rules = append(rules, pion.ICEAddressRewriteRule{
				External:        ext,
				AsCandidateType: pion.ICECandidateTypeHost,
				Mode:            pion.ICEAddressRewriteReplace,
			})
		}
	}
	return rules, nil
}

// registerInterceptors adds the role's interceptors after any extra ones.
func registerInterceptors(me *pion.MediaEngine, reg *interceptor.Registry, o options, lf *LoggerFactory) error {
	switch o.role {
	case RoleReceive:
		rr, err := report.NewReceiverInterceptor(report.WithReceiverLoggerFactory(lf))
		if err != nil {
			return err
		}
		reg.Add(rr)
		if o.twcc {
			tw, err := twcc.NewSenderInterceptor(twcc.WithLoggerFactory(lf))
			if err != nil {
				return err
			}
			reg.Add(tw)
		}
	case RoleSend:
		if !o.noNACKRe {
			resp, err := nack.NewResponderInterceptor(nack.WithResponderLoggerFactory(lf))
			if err != nil {
				return err
			}
			reg.Add(resp)
		}
		sr, err := report.NewSenderInterceptor(report.WithSenderLoggerFactory(lf))
		if err != nil {
			return err
		}
		reg.Add(sr)
	default:
		return fmt.Errorf("unknown role %d", int(o.role))
	}
	return nil
}

// registerCodecs registers SupportedCodecs, the video feedback the recorder
// answers (NACK, PLI, FIR) and the MID header extension that lets pion route
// streams whose SSRC the offer did not declare.
func registerCodecs(me *pion.MediaEngine, withTWCC bool) error {
	videoFB := []pion.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}
	if withTWCC {
		videoFB = append(videoFB, pion.RTCPFeedback{Type: pion.TypeRTCPFBTransportCC})
	}
	for _, c := range supportedCodecs {
		typ := pion.RTPCodecTypeVideo
		fb := videoFB
		if c.Kind == KindAudio {
			typ = pion.RTPCodecTypeAudio
			fb = nil
			if withTWCC {
				fb = []pion.RTCPFeedback{{Type: pion.TypeRTCPFBTransportCC}}
			}
		}
		err := me.RegisterCodec(pion.RTPCodecParameters{
			RTPCodecCapability: pion.RTPCodecCapability{
				MimeType:     c.MimeType,
				ClockRate:    c.ClockRate,
				Channels:     c.Channels,
				SDPFmtpLine:  c.Fmtp,
				RTCPFeedback: fb,
			},
			PayloadType: pion.PayloadType(c.PayloadType),
		}, typ)
		if err != nil {
			return fmt.Errorf("%s: %w", c.MimeType, err)
		}
	}
	for _, typ := range []pion.RTPCodecType{pion.RTPCodecTypeAudio, pion.RTPCodecTypeVideo} {
		if err := me.RegisterHeaderExtension(pion.RTPHeaderExtensionCapability{URI: sdp.SDESMidURI}, typ); err != nil {
			return fmt.Errorf("mid extension: %w", err)
		}
		if withTWCC {
			if err := me.RegisterHeaderExtension(pion.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, typ); err != nil {
				return fmt.Errorf("transport-cc extension: %w", err)
			}
		}
	}
	return nil
}
