package api

import (
	"net/http"

	"github.com/dogwood/dogwood/mesh"
)

// inviteRoutes are the invitation endpoints: create (the answer carries the
// code), list pending, and revoke.
func (s *Server) inviteRoutes(h func(pattern string, f func(r *http.Request) (any, error))) {
	h("POST /v1/invites", func(r *http.Request) (any, error) {
		var spec mesh.InviteSpec
		if err := decode(r, &spec); err != nil {
			return nil, err
		}
		return s.Node.Invites.Create(r.Context(), spec)
	})
	h("GET /v1/invites", func(r *http.Request) (any, error) {
		return s.Node.Invites.List(r.Context(), r.URL.Query().Get("org"))
	})
	h("DELETE /v1/invites/{org}/{name}", func(r *http.Request) (any, error) {
		return nil, s.Node.Invites.Remove(r.Context(), r.PathValue("org"), r.PathValue("name"))
	})
}
