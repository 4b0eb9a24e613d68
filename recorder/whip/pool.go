package whip

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/interceptor"
	pion "github.com/pion/webrtc/v4"

	"github.com/custodian/custodian/config"
	rtc "github.com/custodian/custodian/recorder/webrtc"
)

// PoolOptions configure a Pool.
type PoolOptions struct {
	// WebRTC are the publishers' ICE settings; nil means
	// {IncludeLoopback: true}.
	WebRTC *config.WebRTC
	// Pacers is the number of goroutines that send every publisher's
	// media (default 1). One pacer sends tens of thousands of packets per
	// second; more spread the SRTP and socket work over more cores.
	Pacers int
	// Logger receives pion's errors (its warnings about streams closing
	// at hang-up are noise for a load generator).
	Logger *slog.Logger
}

// Pool runs many publishers on one pion API, with their media sent by a
// few pacing goroutines instead of one per track: what a load generator
// needs to stay small beside the gateway it measures. Publishers of a
// pool cannot use Impairment.NoRetransmit (the API has a NACK responder).
type Pool struct {
	api *rtc.API
	fac *poolFactory
	log *slog.Logger

	newPC  sync.Mutex // one NewPeerConnection at a time: fac.next is its impairment
	pacers []*pacer
	next   int
	mu     sync.Mutex
	closed bool
}

// ErrPoolNoRetransmit is returned by Pool.Publish for
// Impairment.NoRetransmit.
var ErrPoolNoRetransmit = errors.New("whip: a pool's publishers always retransmit (NoRetransmit needs its own API)")

// NewPool builds the shared API and starts the pacers. Close it after its
// publishers.
func NewPool(opts PoolOptions) (*Pool, error) {
	cfg := config.WebRTC{IncludeLoopback: true}
	if opts.WebRTC != nil {
		cfg = *opts.WebRTC
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fac := &poolFactory{}
	api, err := rtc.NewAPI(cfg, rtc.WithRole(rtc.RoleSend), rtc.WithInterceptor(fac), rtc.WithLogger(log, slog.LevelError))
	if err != nil {
		return nil, err
	}
	p := &Pool{api: api, fac: fac, log: log}
	n := max(opts.Pacers, 1)
	for range n {
		pc := newPacer()
		p.pacers = append(p.pacers, pc)
		go pc.run()
	}
	return p, nil
}

// Publish is Publish with the pool's API and pacers; opts.WebRTC is
// ignored (the pool's applies).
func (pl *Pool) Publish(ctx context.Context, opts Options) (*Publisher, error) {
	if opts.Impairment.NoRetransmit {
		return nil, ErrPoolNoRetransmit
	}
	p, u, err := newPublisher(opts)
	if err != nil {
		return nil, err
	}
	pl.mu.Lock()
	closed := pl.closed
	pl.mu.Unlock()
	if closed {
		return nil, errors.New("whip: pool closed")
	}
	p.pool, p.api = pl, pl.api
	pl.newPC.Lock()
	pl.fac.next = p.impair
	p.pc, err = pl.api.NewPeerConnection(pion.Configuration{})
	pl.fac.next = nil
	pl.newPC.Unlock()
	if err != nil {
		return nil, fmt.Errorf("whip: new peer connection: %w", err)
	}
	return p.start(ctx, u)
}

// add hands a stream to the next pacer.
func (pl *Pool) add(s *stream) {
	pl.mu.Lock()
	pc := pl.pacers[pl.next%len(pl.pacers)]
	pl.next++
	pl.mu.Unlock()
	pc.add(s)
}

// Close stops the pacers and releases the API. Close the pool's
// publishers first.
func (pl *Pool) Close() error {
	pl.mu.Lock()
	if pl.closed {
		pl.mu.Unlock()
		return nil
	}
	pl.closed = true
	pl.mu.Unlock()
	for _, pc := range pl.pacers {
		pc.stop()
	}
	return pl.api.Close()
}

// poolFactory hands each new PeerConnection the impairment interceptor of
// the publisher being created (NewPeerConnection builds the interceptors
// synchronously, under Pool.newPC).
type poolFactory struct {
	next *impairFactory
}

func (f *poolFactory) NewInterceptor(id string) (interceptor.Interceptor, error) {
	if f.next == nil {
		return &interceptor.NoOp{}, nil
	}
	return f.next.NewInterceptor(id)
}

// pacer sends the frames of many streams, each when it is due, from one
// goroutine.
type pacer struct {
	mu    sync.Mutex
	h     streamHeap
	wake  chan struct{}
	quit  chan struct{}
	ended chan struct{}
}

func newPacer() *pacer {
	return &pacer{wake: make(chan struct{}, 1), quit: make(chan struct{}), ended: make(chan struct{})}
}

func (pc *pacer) add(s *stream) {
	pc.mu.Lock()
	heap.Push(&pc.h, s)
	pc.mu.Unlock()
	select {
	case pc.wake <- struct{}{}:
	default:
	}
}

// slack: frames due this soon are sent in the same round, so that a
// pacer with many streams wakes about once a millisecond, not once per
// packet.
const slack = time.Millisecond

func (pc *pacer) run() {
	defer close(pc.ended)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var due []*stream
	for {
		now := time.Now()
		pc.mu.Lock()
		for pc.h.Len() > 0 && !pc.h[0].due.After(now.Add(slack)) {
			due = append(due, heap.Pop(&pc.h).(*stream))
		}
		var wait time.Duration = time.Hour
		if pc.h.Len() > 0 {
			wait = pc.h[0].due.Sub(now)
		}
		pc.mu.Unlock()
		if len(due) > 0 {
			for _, s := range due {
				if s.finished() || !s.sendFrame() || s.finished() {
					s.p.sending.Done()
					s.p.wg.Done()
					continue
				}
				pc.mu.Lock()
				heap.Push(&pc.h, s)
				pc.mu.Unlock()
			}
			clear(due)
			due = due[:0]
			continue
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-pc.wake:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		case <-pc.quit:
			pc.mu.Lock()
			for pc.h.Len() > 0 {
				s := heap.Pop(&pc.h).(*stream)
				s.p.sending.Done()
				s.p.wg.Done()
			}
			pc.mu.Unlock()
			return
		}
	}
}

func (pc *pacer) stop() {
	close(pc.quit)
	<-pc.ended
}

// streamHeap orders streams by due time.
type streamHeap []*stream

func (h streamHeap) Len() int           { return len(h) }
func (h streamHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h streamHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heap, h[j].heap = i, j
}
func (h *streamHeap) Push(x any) {
	s := x.(*stream)
	s.heap = len(*h)
	*h = append(*h, s)
}
func (h *streamHeap) Pop() any {
	old := *h
	n := len(old)
	s := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return s
}
