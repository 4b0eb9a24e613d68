package pipeline

import (
	"slices"
	"time"

	"github.com/custodian/custodian/recorder/report"
)

// buildReport assembles the completeness report at close.
func (r *Recording) buildReport(end time.Time, endNs int64) *report.Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.publish()
	m := &r.mux
	rep := &report.Report{
		ContentType:  r.contentType(),
		EndedAt:      end.UTC(),
		Empty:        !m.started,
		Parts:        r.nParts,
		Bytes:        r.nBytes,
		LostRanges:   []report.Range{},
		PausedRanges: []report.Range{},
		Tracks:       []report.Track{},
	}
	var startMS, durMS int64
	if m.started {
		st := r.clock.Time(m.start).UTC()
		rep.StartedAt = &st
		startMS = m.start / 1e6
		durMS = m.mediaEnd / 1e6
		rep.StartOffsetMS = startMS
		rep.DurationMS = durMS
	}
	toRec := func(rg *report.Range) {
		if !m.started {
			return
		}
		rg.StartMS = min(max(rg.SessionStartMS-startMS, 0), durMS)
		rg.EndMS = min(max(rg.SessionEndMS-startMS, 0), durMS)
	}
	var first, last int64
	haveTimes := false
	for _, t := range r.tracks {
		st := t.jb.Stats()
		_, reanchor := t.mapper.Counts() // rejected frames are in t.invalid
		tr := report.Track{
			Kind:                  t.kind,
			Codec:                 t.codec.String(),
			PacketsExpected:       st.Expected,
			PacketsReceived:       st.Received,
			PacketsLost:           st.Lost,
			PacketsLate:           st.Late + t.lateRetired,
			PacketsDuplicate:      st.Duplicate,
			PacketsDroppedInvalid: t.invalid + t.dp.Stats().Invalid,
			PacketsGated:          t.gated,
			FramesWritten:         t.written,
			FramesDiscarded:       t.discarded + t.dp.Stats().FramesDiscarded,
			SilenceMS:             t.silence / 48,
			KeyframeRequests:      t.keyReqs,
			NACKsSent:             st.NACKs,
			SSRCs:                 slices.Clone(t.ssrcs),
			SSRCChanges:           t.ssrcChanges,
			SequenceRestarts:      st.Restarts,
			TimestampJumps:        reanchor,
			LostRanges:            []report.Range{},
			LostRangesTruncated:   t.lostTrunc,
		}
		if t == r.audio && m.audioBase > 0 && tr.SilenceMS > 0 {
			tr.SilenceMS -= m.audioBase / 48 // the pre-skip is not on the timeline
		}
		if tr.SSRCs == nil {
			tr.SSRCs = []uint32{}
		}
		if t.anyPacket {
			fa, la := r.clock.Time(t.firstAt).UTC(), r.clock.Time(t.lastAt).UTC()
			tr.FirstPacketAt, tr.LastPacketAt = &fa, &la
			if !haveTimes || t.firstAt < first {
				first = t.firstAt
			}
			if !haveTimes || t.lastAt > last {
				last = t.lastAt
			}
			haveTimes = true
		}
		for _, lr := range t.lost {
			toRec(&lr)
			tr.LostRanges = append(tr.LostRanges, lr)
			rep.LostRanges = append(rep.LostRanges, lr)
		}
		rep.Codecs = append(rep.Codecs, tr.Codec)
		rep.PacketsExpected += tr.PacketsExpected
		rep.PacketsReceived += tr.PacketsReceived
		rep.PacketsLost += tr.PacketsLost
		rep.PacketsLate += tr.PacketsLate
		rep.PacketsDuplicate += tr.PacketsDuplicate
		rep.PacketsDroppedInvalid += tr.PacketsDroppedInvalid
		rep.PacketsGated += tr.PacketsGated
		rep.KeyframeRequests += tr.KeyframeRequests
		rep.NACKsSent += tr.NACKsSent
		rep.SSRCChanges += tr.SSRCChanges
		rep.Tracks = append(rep.Tracks, tr)
	}
	if haveTimes {
		fa, la := r.clock.Time(first).UTC(), r.clock.Time(last).UTC()
		rep.FirstPacketAt, rep.LastPacketAt = &fa, &la
	}
	slices.SortStableFunc(rep.LostRanges, func(a, b report.Range) int { return int(a.SessionStartMS - b.SessionStartMS) })
	for _, s := range r.spans {
		e := s.end
		if e == 0 {
			e = endNs
		}
		rg := report.Range{Kind: s.gate.kind(), SessionStartMS: s.start / 1e6, SessionEndMS: e / 1e6}
		toRec(&rg)
		rep.PausedRanges = append(rep.PausedRanges, rg)
	}
	if err := r.Err(); err != nil {
		rep.Failure = err.Error()
	}
	return rep
}
