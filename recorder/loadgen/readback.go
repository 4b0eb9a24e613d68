package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// apiRecording is what the read-back needs of the API's recording JSON.
type apiRecording struct {
	ID            string         `json:"id"`
	ParticipantID string         `json:"participant_id"`
	Status        string         `json:"status"`
	DurationMS    int64          `json:"duration_ms"`
	Completeness  map[string]any `json:"completeness"`
}

func final(status string) bool {
	return status == "complete" || status == "failed" || status == "recovered" || status == "deleted"
}

// readBack fills in each connected publisher's recording: GET
// /v1/recordings?session_id= per session, then GET /v1/recordings/{id}
// for the completeness report, polling until the recording is final or
// ctx ends.
func readBack(ctx context.Context, client *http.Client, o Options, pubs []*pubRun, log *slog.Logger) {
	bySession := map[string][]*pubRun{}
	var order []string
	for _, p := range pubs {
		if !p.connected {
			continue
		}
		if bySession[p.session] == nil {
			order = append(order, p.session)
		}
		bySession[p.session] = append(bySession[p.session], p)
	}
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(8, len(order)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sid := range work {
				readSession(ctx, client, o, sid, bySession[sid], log)
			}
		}()
	}
	for _, sid := range order {
		work <- sid
	}
	close(work)
	wg.Wait()
}

func readSession(ctx context.Context, client *http.Client, o Options, sid string, pubs []*pubRun, log *slog.Logger) {
	for {
		var list struct {
			Recordings []apiRecording `json:"recordings"`
		}
		err := getJSON(ctx, client, o, "/v1/recordings?limit=100&session_id="+url.QueryEscape(sid), &list)
		if err != nil {
			log.Warn("loadgen: read back recordings", "session_id", sid, "err", err)
			return
		}
		pending := false
		for _, p := range pubs {
			if p.rec != nil && final(p.rec.Status) {
				continue
			}
			var ar *apiRecording
			for i := range list.Recordings {
				if list.Recordings[i].ParticipantID == p.participant {
					ar = &list.Recordings[i] // newest first: the latest connection
					break
				}
			}
			if ar == nil || !final(ar.Status) {
				pending = true
				continue
			}
			var full apiRecording
			if err := getJSON(ctx, client, o, "/v1/recordings/"+url.PathEscape(ar.ID), &full); err != nil {
				log.Warn("loadgen: read back recording", "recording_id", ar.ID, "err", err)
				pending = true
				continue
			}
			c := full.Completeness
			p.rec = &Recording{
				SessionID: sid, ParticipantID: p.participant, RecordingID: full.ID, Status: full.Status,
				DurationMS:      full.DurationMS,
				PacketsExpected: num(c, "packets_expected"), PacketsReceived: num(c, "packets_received"),
				PacketsLost: num(c, "packets_lost"), PacketsLate: num(c, "packets_late"), NACKsSent: num(c, "nacks_sent"),
			}
		}
		if !pending {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func num(m map[string]any, k string) uint64 {
	f, _ := m[k].(float64)
	if f < 0 {
		return 0
	}
	return uint64(f)
}

// getJSON GETs o.URL+path with the token and decodes the JSON answer.
func getJSON(ctx context.Context, client *http.Client, o Options, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL+path, nil)
	if err != nil {
		return err
	}
	if o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+o.Token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		if len(body) > 300 {
			body = body[:300]
		}
		return fmt.Errorf("GET %s: HTTP %d: %s", path, resp.StatusCode, body)
	}
	return json.Unmarshal(body, out)
}
