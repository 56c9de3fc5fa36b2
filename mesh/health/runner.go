package health

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// Prober runs one probe and reports whether it passed, with a short output. It
// must return within the probe's Timeout (or ctx's end, whichever is first).
type Prober interface {
	Probe(ctx context.Context, p Probe) (pass bool, output string)
}

// RunnerConfig wires a Runner.
type RunnerConfig struct {
	Prober Prober
	// OnTransition receives each transition, in order, from one goroutine. It writes
	// the catalog (a disk sync): it does not hold up probes, but the next transition
	// of any machine waits for it. Transitions of one machine that pile up meanwhile
	// are merged into the latest.
	OnTransition func(Transition)
	// MaxInFlight bounds concurrent probes, each holding a thread while it waits
	// (default 2048: 10,000 checks every 10 s that all time out after 2 s keep 2,000
	// in flight).
	MaxInFlight int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Runner runs an Engine on real time: one goroutine schedules, probes run on
// workers, and each worker records its result in the engine itself.
type Runner struct {
	cfg RunnerConfig
	mu  sync.Mutex // guards eng and conns
	eng *Engine
	// conns are the http checks' kept connections, one per machine+port.
	conns map[connKey]*keptConn
	kick  chan struct{}
	// Probes run on workers that stay (a goroutine per probe grew a fresh stack
	// through the dial path every time); there are as many as were ever busy at once.
	work    chan Probe
	workers int

	pendMu  sync.Mutex
	pending map[string]Transition
	order   []string
	wake    chan struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type connKey struct {
	machine string
	addr    netip.AddrPort
}

// slack lets the scheduler take every check due within it in one wake-up: a host
// with 10,000 checks at 10 s would otherwise wake a thousand times a second.
const slack = 5 * time.Millisecond

// NewRunner starts a runner with nothing to check; Close stops it.
func NewRunner(cfg RunnerConfig) *Runner {
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 2048
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{cfg: cfg, eng: NewEngine(), conns: map[connKey]*keptConn{}, kick: make(chan struct{}, 1), work: make(chan Probe),
		pending: map[string]Transition{}, wake: make(chan struct{}, 1), cancel: cancel}
	r.wg.Add(2)
	go r.loop(ctx)
	go r.writer(ctx)
	return r
}

// Set replaces the machines to check (see Engine.Set), and closes the kept
// connections of http checks that went.
func (r *Runner) Set(targets []Target) {
	live := map[connKey]bool{}
	for _, t := range targets {
		for _, c := range t.Checks {
			if port, _, err := c.Port(); err == nil && c.Kind == catalog.CheckHTTP {
				live[connKey{t.ID, netip.AddrPortFrom(t.Addr, port)}] = true
			}
		}
	}
	var gone []*keptConn
	r.mu.Lock()
	r.eng.Set(r.cfg.Now(), targets)
	for k, c := range r.conns {
		if !live[k] {
			gone = append(gone, c)
			delete(r.conns, k)
		}
	}
	r.mu.Unlock()
	for _, c := range gone {
		c.Close()
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Live returns a machine's checks with their latest results (nil if not checked here).
func (r *Runner) Live(id string) []catalog.Check {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eng.Live(id)
}

// Counts returns how many checked machines are in each health state.
func (r *Runner) Counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eng.Counts()
}

// Close stops checking and waits for the runner's goroutines (probes in flight end
// by their timeouts), and closes the kept connections.
func (r *Runner) Close() {
	r.cancel()
	r.wg.Wait()
	r.mu.Lock()
	conns := r.conns
	r.conns = map[connKey]*keptConn{}
	r.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func (r *Runner) loop(ctx context.Context) {
	defer r.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var due []Probe
	var workers sync.WaitGroup
	defer workers.Wait()
	for {
		now := r.cfg.Now()
		r.mu.Lock()
		due = r.eng.Due(now.Add(slack), due[:0])
		next := r.eng.Next()
		for i, p := range due {
			if p.Kind != catalog.CheckHTTP {
				continue
			}
			k := connKey{p.Machine, p.Addr}
			c := r.conns[k]
			if c == nil {
				c = newKeptConn()
				r.conns[k] = c
			}
			due[i].conn = c
		}
		r.mu.Unlock()
		for _, p := range due {
			select {
			case r.work <- p:
				continue
			default:
			}
			if r.workers < r.cfg.MaxInFlight {
				r.workers++
				workers.Add(1)
				go r.worker(ctx, &workers, p)
				continue
			}
			select { // every worker is busy: wait for one
			case r.work <- p:
			case <-ctx.Done():
				return
			}
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(r.cfg.Now()), 0)
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		case <-t.C:
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
	}
}

// worker runs probes until the runner closes, starting with first, and records
// each result.
func (r *Runner) worker(ctx context.Context, wg *sync.WaitGroup, first Probe) {
	defer wg.Done()
	p := first
	for {
		// The probe bounds itself by p.Timeout: a context timer per check was 6 %
		// of the CPU checks cost.
		pass, out := r.cfg.Prober.Probe(ctx, p)
		r.record(p, pass, out)
		select {
		case p = <-r.work:
		case <-ctx.Done():
			return
		}
	}
}

func (r *Runner) record(p Probe, pass bool, output string) {
	r.mu.Lock()
	tr, ok := r.eng.Result(r.cfg.Now(), p, pass, output)
	r.mu.Unlock()
	if !ok || r.cfg.OnTransition == nil {
		return
	}
	r.pendMu.Lock()
	if prev, had := r.pending[tr.Machine]; had {
		tr.From = prev.From // merged: from what was last written
	} else {
		r.order = append(r.order, tr.Machine)
	}
	r.pending[tr.Machine] = tr
	r.pendMu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// writer hands transitions to OnTransition off the scheduler's goroutine.
func (r *Runner) writer(ctx context.Context) {
	defer r.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		}
		for {
			r.pendMu.Lock()
			if len(r.order) == 0 {
				r.pendMu.Unlock()
				break
			}
			id := r.order[0]
			r.order = r.order[1:]
			tr := r.pending[id]
			delete(r.pending, id)
			r.pendMu.Unlock()
			r.cfg.OnTransition(tr)
		}
	}
}
