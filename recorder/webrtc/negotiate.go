package webrtc

import (
	"context"
	"fmt"

	pion "github.com/pion/webrtc/v4"
)

// Answer applies a remote offer to pc, creates and sets the answer, and
// waits (bounded by ctx) until ICE gathering is complete, so the answer it
// returns carries every local candidate (WHIP without trickle). Validate the
// offer with ValidateOffer first.
func Answer(ctx context.Context, pc *pion.PeerConnection, offer string) (string, error) {
	if err := pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("webrtc: set remote offer: %w", err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("webrtc: create answer: %w", err)
	}
	return setLocal(ctx, pc, answer)
}

// CreateOffer creates and sets a local offer on pc and waits (bounded by ctx) until
// ICE gathering is complete; for the offering side (WHEP pull, publishers).
func CreateOffer(ctx context.Context, pc *pion.PeerConnection) (string, error) {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return "", fmt.Errorf("webrtc: create offer: %w", err)
	}
	return setLocal(ctx, pc, offer)
}

func setLocal(ctx context.Context, pc *pion.PeerConnection, sd pion.SessionDescription) (string, error) {
	gathered := pion.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(sd); err != nil {
		return "", fmt.Errorf("webrtc: set local %s: %w", sd.Type, err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", fmt.Errorf("webrtc: gather candidates: %w", ctx.Err())
	}
	return pc.LocalDescription().SDP, nil
}
