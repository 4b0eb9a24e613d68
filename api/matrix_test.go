package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
)

// matrixPerms is the role → permission table of docs/auth.md, written out
// here independently of api/auth so that a change there must be a
// deliberate change here too.
var matrixPerms = map[auth.Role][]auth.Permission{
	auth.RoleAdmin: auth.AllPermissions(),
	auth.RoleCompliance: {auth.SessionsRead, auth.SessionsWrite, auth.RecordingsRead, auth.MediaRead, auth.TranscriptsRead, auth.TranscriptsUnredacted,
		auth.Search, auth.HoldsRead, auth.HoldsWrite, auth.PoliciesRead, auth.TokensRead, auth.TokensWrite, auth.AuditRead,
		auth.ExportsRead, auth.ExportsWrite},
	auth.RoleSupervisor: {auth.SessionsRead, auth.SessionsWrite, auth.RecordingsRead, auth.MediaRead, auth.TranscriptsRead, auth.Search},
	auth.RoleAuditor:    {auth.AuditRead},
	auth.RoleIngest:     {auth.Ingest},
}

// A matrix target: where the item a request names lives.
type mtarget struct {
	name   string
	tenant string
	dept   string
}

var mtargets = []mtarget{
	{"own tenant, own department", "default", "sales"},
	{"own tenant, other department", "default", "support"},
	{"other tenant", "acme", "sales"},
}

// A matrix caller. Every caller is of tenant default; the supervisor's
// department is sales.
type mcaller struct {
	name    string
	role    auth.Role
	dept    string
	token   string
	invalid bool // expired or revoked: 401 for every protected route
}

// mitems are the seeded items of one target.
type mitems struct {
	recording, session, participant, hold, export string
}

type mworld struct {
	g     *gatewaytest.Gateway
	items map[string]mitems // by target name
	// ids of everything in tenant acme and in department support, which
	// must never appear in a response to callers that may not see them.
	acmeIDs, supportIDs []string
}

func seedWorld(t *testing.T, g *gatewaytest.Gateway) *mworld {
	w := &mworld{g: g, items: map[string]mitems{}}
	id, _ := age.GenerateX25519Identity()
	for _, tg := range mtargets {
		session := fmt.Sprintf("mx-%s-%s-sess", tg.tenant, tg.dept)
		rec := seedRecording(t, g, recSpec{Tenant: tg.tenant, Dept: tg.dept, Session: session, Participant: "pt-" + tg.dept, Data: longOgg(t)[:20000]})
		tr := seedTranscript(t, g, rec, sampleTranscript("Speaker "+tg.dept, 0, "hello from "+tg.dept))
		// and an unredacted copy (policy keep_unredacted)
		body, _ := json.Marshal(sampleTranscript("Speaker "+tg.dept, 0, "hello from "+tg.dept+" unredacted"))
		info, err := g.Store.PutObject(t.Context(), rec.TenantID, rec.ID, api.UnredactedObject, body, storage.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		g.DB.Model(&meta.Transcript{}).Where("recording_id = ?", tr.RecordingID).
			Updates(map[string]any{"unredacted_key": info.Key, "unredacted_sha256": info.CipherSHA256})
		hold := meta.LegalHold{ID: meta.NewID("hold"), TenantID: tg.tenant, Name: "hold " + tg.name, Reason: "matrix",
			SessionIDs: meta.NewJSON([]string{session}), ParticipantIDs: meta.NewJSON([]string{}), CreatedBy: "test", CreatedAt: time.Now().UTC()}
		if err := g.DB.Create(&hold).Error; err != nil {
			t.Fatal(err)
		}
		// A real export made by an admin of the target's tenant.
		adm := g.AdminToken
		if tg.tenant != "default" {
			adm, _ = newToken(t, g, tg.tenant, auth.RoleAdmin, "", time.Hour)
		}
		r := do(t, "POST", g.URL()+"/v1/exports", adm, []byte(fmt.Sprintf(`{"session_ids":[%q],"recipient":%q}`, session, id.Recipient().String())))
		if r.Status != 202 {
			t.Fatalf("seed export: %d %s", r.Status, r.Body)
		}
		var e api.ExportJSON
		r.json(t, &e)
		waitExport(t, g, adm, e.ID)
		w.items[tg.name] = mitems{recording: rec.ID, session: session, participant: "pt-" + tg.dept, hold: hold.ID, export: e.ID}
		ids := []string{rec.ID, session, hold.ID, e.ID}
		if tg.tenant == "acme" {
			w.acmeIDs = append(w.acmeIDs, ids...)
		} else if tg.dept == "support" {
			w.supportIDs = append(w.supportIDs, ids...)
		}
	}
	return w
}

// fresh returns items for one destructive request (revoke, release, end),
// so that no cell changes what another cell sees.
func (w *mworld) fresh(t *testing.T, tg mtarget, kind string) string {
	t.Helper()
	switch kind {
	case "token":
		_, id := newToken(t, w.g, tg.tenant, auth.RoleSupervisor, tg.dept, time.Hour)
		return id
	case "hold":
		h := meta.LegalHold{ID: meta.NewID("hold"), TenantID: tg.tenant, Name: "victim", SessionIDs: meta.NewJSON([]string{"v"}),
			ParticipantIDs: meta.NewJSON([]string{}), CreatedBy: "test", CreatedAt: time.Now().UTC()}
		if err := w.g.DB.Create(&h).Error; err != nil {
			t.Fatal(err)
		}
		return h.ID
	case "session":
		s := "mx-fresh-" + meta.NewID("s")
		seedSession(t, w.g, tg.tenant, tg.dept, s, nil, "pt-"+tg.dept)
		if tg.tenant == "acme" {
			w.acmeIDs = append(w.acmeIDs, s)
		} else if tg.dept == "support" {
			w.supportIDs = append(w.supportIDs, s)
		}
		return s
	}
	return ""
}

// fill substitutes a route pattern's parameters for target tg and
// returns the path and the kind of item it names: recording, session,
// hold, export, token; collection (no parameter); whip (a WHIP ingest
// path, whose session is created in the caller's tenant); opaque (a
// parameter this test cannot seed, e.g. a WHIP resource id).
func (w *mworld) fill(t *testing.T, rt api.Route, tg mtarget) (string, string) {
	segs := strings.Split(strings.TrimPrefix(rt.Pattern, "/"), "/")
	it := w.items[tg.name]
	kind := "collection"
	destructive := rt.Method == http.MethodDelete || strings.HasSuffix(rt.Pattern, "/end")
	var session string
	whipParam := 0
	for i, s := range segs {
		if !strings.HasPrefix(s, "{") {
			continue
		}
		prev := ""
		if i > 0 {
			prev = segs[i-1]
		}
		k := ""
		switch {
		case segs[0] == "whip" && whipParam == 0: // /whip/{session}/{participant}[/{resource}]
			whipParam++
			k, segs[i] = "whip", it.session
		case segs[0] == "whip" && whipParam == 1:
			whipParam++
			segs[i] = it.participant
			continue
		case prev == "recordings":
			k, segs[i] = "recording", it.recording
		case prev == "sessions" && rt.Method == http.MethodPost && segs[len(segs)-1] == "pull":
			// a pull opens the session in the caller's tenant when it
			// does not exist there (like WHIP); an existing one is checked
			k, segs[i] = "session-upsert", it.session
		case prev == "sessions":
			k, segs[i] = "session", it.session
			if destructive {
				session = w.fresh(t, tg, "session")
				segs[i] = session
			}
		case prev == "participants":
			segs[i] = it.participant
			continue
		case prev == "legal-holds":
			k, segs[i] = "hold", it.hold
			if destructive {
				segs[i] = w.fresh(t, tg, "hold")
			}
		case prev == "exports":
			k, segs[i] = "export", it.export
		case prev == "tokens":
			k, segs[i] = "token", w.fresh(t, tg, "token")
		default:
			k, segs[i] = "opaque", "mx-unknown"
		}
		if kind == "collection" || k == "opaque" {
			kind = k
		}
	}
	return "/" + strings.Join(segs, "/"), kind
}

// Expected outcomes of a cell.
type mwant int

const (
	wantOK  mwant = iota // 2xx, or a 4xx about the request itself (400, 405, 409, 410, 415, 416, 422)
	wantAny              // not 401/403, not 5xx (an unseedable item may be 404)
	want401
	want403
	want404
)

func (w mwant) String() string {
	return [...]string{"2xx or validation 4xx", "not 401/403/5xx", "401", "403", "404"}[w]
}

func (w mwant) accepts(status int) bool {
	switch w {
	case wantOK:
		return status >= 200 && status < 300 || slices.Contains([]int{400, 405, 409, 410, 412, 413, 415, 416, 422}, status)
	case wantAny:
		return status != 401 && status != 403 && status < 500
	case want401:
		return status == 401
	case want403:
		return status == 403
	default:
		return status == 404
	}
}

// selfAuthenticated are the routes without a permission that still want
// a valid credential of any role (the handler authenticates it).
var selfAuthenticated = map[string]bool{"GET /v1/me": true}

// expect is the authorization rule of SPEC section 9 and docs/auth.md,
// by permission and item kind (never by route name), so routes
// registered later by other components are covered as they land.
func expect(rt api.Route, c mcaller, tg mtarget, kind string) mwant {
	if rt.Perm == "" {
		if selfAuthenticated[rt.Method+" "+rt.Pattern] {
			if c.invalid {
				return want401
			}
			return wantOK
		}
		return wantAny
	}
	if c.invalid {
		return want401
	}
	if !slices.Contains(matrixPerms[c.role], rt.Perm) {
		return want403
	}
	switch kind {
	case "collection", "whip":
		return wantOK
	case "opaque":
		return wantAny
	}
	if tg.tenant != "default" {
		if kind == "session-upsert" {
			return wantOK // another tenant's id is an unknown id in the caller's tenant
		}
		return want404
	}
	if c.role == auth.RoleSupervisor && (kind == "recording" || kind == "session" || kind == "session-upsert") && tg.dept != c.dept {
		return want404
	}
	return wantOK
}

func TestAuthorizationMatrix(t *testing.T) {
	g := start(t)
	w := seedWorld(t, g)
	callers := []mcaller{
		{name: "admin", role: auth.RoleAdmin, token: g.AdminToken},
		{name: "compliance", role: auth.RoleCompliance},
		{name: "supervisor(sales)", role: auth.RoleSupervisor, dept: "sales"},
		{name: "auditor", role: auth.RoleAuditor},
		{name: "ingest", role: auth.RoleIngest},
		{name: "expired admin", role: auth.RoleAdmin, invalid: true},
		{name: "revoked admin", role: auth.RoleAdmin, invalid: true},
	}
	for i := range callers {
		c := &callers[i]
		if c.token != "" {
			continue
		}
		var id string
		c.token, id = newToken(t, g, "default", c.role, c.dept, time.Hour)
		switch c.name {
		case "expired admin":
			g.DB.Model(&meta.Token{}).Where("id = ?", id).Update("expires_at", time.Now().Add(-time.Minute))
		case "revoked admin":
			if _, err := auth.RevokeToken(t.Context(), g.DB, "default", id); err != nil {
				t.Fatal(err)
			}
		}
	}

	routes := g.API.Routes()
	sort.SliceStable(routes, func(i, j int) bool { return routes[i].Method == "GET" && routes[j].Method != "GET" })
	cells, failures := 0, 0
	for _, rt := range routes {
		for _, c := range callers {
			for ti, tg := range mtargets {
				path, kind := w.fill(t, rt, tg)
				if (kind == "collection" || kind == "whip") && ti > 0 {
					continue // the request does not depend on the target
				}
				var body []byte
				headers := []string{}
				switch rt.Method {
				case "POST", "PUT", "PATCH":
					body = []byte(`{}`)
					if strings.HasPrefix(rt.Pattern, "/whip/") {
						body = []byte("not an sdp offer")
						headers = append(headers, "Content-Type: application/sdp")
					}
				}
				method := rt.Method
				r := do(t, method, g.URL()+path, c.token, body, headers...)
				want := expect(rt, c, tg, kind)
				cells++
				if !want.accepts(r.Status) {
					failures++
					t.Errorf("%s %s as %s on %s (%s): status %d, want %s: %.200s", rt.Method, path, c.name, tg.name, kind, r.Status, want, r.Body)
					continue
				}
				if r.Status >= 400 && r.Status != 405 && r.Status != 416 && r.Header.Get("Content-Type") != "application/problem+json" &&
					!strings.HasPrefix(rt.Pattern, "/whip/") {
					t.Errorf("%s %s as %s: %d without a problem+json body (%s)", rt.Method, path, c.name, r.Status, r.Header.Get("Content-Type"))
				}
				// Nothing outside the caller's scope ever appears in an
				// answer (the audit log names what callers asked for, so
				// it is checked separately).
				if r.Status < 300 && !strings.HasPrefix(rt.Pattern, "/v1/audit") {
					forbidden := w.acmeIDs
					if c.role == auth.RoleSupervisor {
						forbidden = append(slices.Clone(forbidden), w.supportIDs...)
					}
					for _, id := range forbidden {
						if strings.Contains(string(r.Body), id) {
							t.Errorf("%s %s as %s: answer names out-of-scope item %s", rt.Method, path, c.name, id)
						}
					}
				}
			}
		}
	}
	t.Logf("%d routes, %d cells, %d failures", len(routes), cells, failures)
	if len(routes) < 15 || cells < 150 {
		t.Fatalf("suspiciously small matrix: %d routes, %d cells", len(routes), cells)
	}
}
