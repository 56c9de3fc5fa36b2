package mesh

import "time"

// DefaultTombstoneTTL is how long a delete is remembered (--tombstone-ttl). Collection
// itself is mesh/replica's.
const DefaultTombstoneTTL = 72 * time.Hour
