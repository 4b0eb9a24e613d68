package api

import (
	_ "embed"
	"net/http"
	"strconv"

	"github.com/custodian/custodian/api/auth"
)

// OpenAPI is the API's OpenAPI 3.1 document, served at /v1/openapi.yaml.
// The canonical file is docs/openapi.yaml; api/openapi.yaml is a copy
// (go:embed cannot reach outside the package) that TestOpenAPICopy keeps
// identical. After editing docs/openapi.yaml run `go generate ./api`.
//
//go:generate cp ../docs/openapi.yaml openapi.yaml
//go:embed openapi.yaml
var OpenAPI []byte

func serveOpenAPI(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	h := w.Header()
	h.Set("Content-Type", "application/yaml")
	h.Set("Content-Length", strconv.Itoa(len(OpenAPI)))
	h.Set("Cache-Control", "public, max-age=300")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(OpenAPI)
	}
}
