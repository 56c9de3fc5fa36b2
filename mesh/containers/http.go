package containers

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/dogwood/dogwood/mesh"
	"github.com/dogwood/dogwood/mesh/containers/wire"
)

// Routes are the service's endpoints, for the agent's unix socket only (wrap them
// in RootOnly, with ConnContext on the socket's server):
//
//	PUT    /v1/attachments                      AddRequest → 200 Attachment
//	GET    /v1/attachments/{container}/{ifname} → 200 Attachment, 404
//	DELETE /v1/attachments/{container}/{ifname} → 204 (also when nothing was there)
//	POST   /v1/attachments/gc                   {"cni_network", "valid": [Key]} → {"removed": [id]}
func (s *Service) Routes() map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		"PUT " + wire.PathAttachments: func(w http.ResponseWriter, r *http.Request) {
			var req AddRequest
			if !decode(w, r, &req) {
				return
			}
			a, err := s.Add(r.Context(), req)
			reply(w, a, err)
		},
		"GET " + wire.PathAttachments + "/{container}/{ifname}": func(w http.ResponseWriter, r *http.Request) {
			a, err := s.Check(r.Context(), Key{ContainerID: r.PathValue("container"), Ifname: r.PathValue("ifname")})
			reply(w, a, err)
		},
		"DELETE " + wire.PathAttachments + "/{container}/{ifname}": func(w http.ResponseWriter, r *http.Request) {
			err := s.Del(r.Context(), Key{ContainerID: r.PathValue("container"), Ifname: r.PathValue("ifname")})
			reply(w, nil, err)
		},
		"POST " + wire.PathGC: func(w http.ResponseWriter, r *http.Request) {
			var req wire.GCRequest
			if !decode(w, r, &req) {
				return
			}
			removed, err := s.GC(r.Context(), req.CNINetwork, req.Valid)
			if removed == nil {
				removed = []string{}
			}
			reply(w, wire.GCResponse{Removed: removed}, err)
		},
	}
}

var errForbidden = &mesh.Error{Code: http.StatusForbidden, Msg: "container attachments are root's: run the CNI plugin as root"}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	d := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		reply(w, nil, &mesh.Error{Code: http.StatusBadRequest, Msg: "invalid request body: " + err.Error()})
		return false
	}
	return true
}

// reply writes v, or the API's error shape {"error": "…"} with the error's status.
func reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(mesh.StatusCode(err))
		json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	if v == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	json.NewEncoder(w).Encode(v)
}
