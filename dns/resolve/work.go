package resolve

import "unsafe"

// work is one query's reusable memory: the presentation form of the question name
// and the buffers that answers built per query (top<N>.nearest.of, SRV, process
// groups, metadata) are packed into. Pooled by the Resolver so that an answered
// query allocates nothing in the steady state; nothing that points into it may
// outlive the query (encode copies what it needs into the response).
type work struct {
	name  [256]byte
	wire  []byte
	offs  []int32
	ranks []ranked
	rtt   []int64
}

func newWork() any { return &work{wire: make([]byte, 0, 1024)} }

// builder returns a setBuilder that packs into w's buffers.
func (w *work) builder() setBuilder { return setBuilder{wire: w.wire[:0], offs: w.offs[:0]} }

// keep takes back the (maybe grown) buffers of a builder made by builder.
func (w *work) keep(b *setBuilder) {
	if cap(b.wire) <= 64<<10 {
		w.wire = b.wire[:0]
	}
	if cap(b.offs) <= 8<<10 {
		w.offs = b.offs[:0]
	}
}

// present writes the presentation form of a wire-format question name, lowercase
// and with the final dot, into w and returns it as a string that aliases w.name: it
// is valid only until w goes back to the pool. ok is false for names that need
// escapes in presentation form (any byte outside [A-Za-z0-9_-]), compression
// pointers, the root and malformed input: those take the unpacked path.
func (w *work) present(qn []byte) (string, bool) {
	n := 0
	for i := 0; i < len(qn); {
		l := int(qn[i])
		if l == 0 {
			if i != len(qn)-1 || n == 0 {
				return "", false
			}
			return unsafe.String(&w.name[0], n), true
		}
		if l > 63 || i+1+l > len(qn) || n+l+1 > len(w.name) {
			return "", false
		}
		for _, c := range qn[i+1 : i+1+l] {
			switch {
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			default:
				return "", false
			}
			w.name[n] = c
			n++
		}
		w.name[n] = '.'
		n++
		i += 1 + l
	}
	return "", false
}
