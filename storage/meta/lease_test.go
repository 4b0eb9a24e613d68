package meta_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/custodian/custodian/internal/testpoll"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/meta/metatest"
	"gorm.io/gorm"
)

func TestLeaseConcurrentContendersOneWins(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		const contenders = 8
		for round := range 10 {
			name := fmt.Sprintf("job-%d", round)
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex
				winners []string
				errs    []error
			)
			start := make(chan struct{})
			for i := range contenders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					owner := fmt.Sprintf("instance-%d", i)
					<-start
					ok, err := meta.TryLease(ctx, db, name, owner, time.Minute)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						errs = append(errs, err)
					}
					if ok {
						winners = append(winners, owner)
					}
				}()
			}
			close(start)
			wg.Wait()
			if len(errs) > 0 {
				t.Fatalf("round %d: errors: %v", round, errs)
			}
			if len(winners) != 1 {
				t.Fatalf("round %d: %d winners %v, want exactly 1", round, len(winners), winners)
			}
			var l meta.Lease
			if err := db.First(&l, "name = ?", name).Error; err != nil {
				t.Fatal(err)
			}
			if l.Owner != winners[0] {
				t.Fatalf("round %d: stored owner %q, winner %q", round, l.Owner, winners[0])
			}
		}
	})
}

func TestLeaseExpiryTakeoverRenewRelease(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		mustTry := func(owner string, ttl time.Duration, want bool) {
			t.Helper()
			ok, err := meta.TryLease(ctx, db, "sweep", owner, ttl)
			if err != nil {
				t.Fatal(err)
			}
			if ok != want {
				t.Fatalf("TryLease(%s) = %v, want %v", owner, ok, want)
			}
		}
		mustTry("a", 300*time.Millisecond, true)
		mustTry("b", time.Minute, false)
		mustTry("a", 300*time.Millisecond, true) // the holder extends
		if err := meta.RenewLease(ctx, db, "sweep", "a", 300*time.Millisecond); err != nil {
			t.Fatalf("renew by holder: %v", err)
		}
		if err := meta.RenewLease(ctx, db, "sweep", "b", time.Minute); !errors.Is(err, meta.ErrLeaseLost) {
			t.Fatalf("renew by non-holder: %v, want ErrLeaseLost", err)
		}
		// b takes over once a's lease expires.
		testpoll.Until(t, 5*time.Second, 20*time.Millisecond, func() error {
			ok, err := meta.TryLease(ctx, db, "sweep", "b", time.Minute)
			if err != nil {
				return err
			}
			if !ok {
				return errors.New("b has not taken over yet")
			}
			return nil
		})
		if err := meta.RenewLease(ctx, db, "sweep", "a", time.Minute); !errors.Is(err, meta.ErrLeaseLost) {
			t.Fatalf("renew after takeover: %v, want ErrLeaseLost", err)
		}
		mustTry("a", time.Minute, false)
		// releasing someone else's lease does nothing
		if err := meta.ReleaseLease(ctx, db, "sweep", "a"); err != nil {
			t.Fatal(err)
		}
		mustTry("a", time.Minute, false)
		if err := meta.ReleaseLease(ctx, db, "sweep", "b"); err != nil {
			t.Fatal(err)
		}
		mustTry("a", time.Minute, true)
	})
}

func TestLeaseRejectsBadArguments(t *testing.T) {
	db := metatest.SQLite(t)
	for _, tc := range []struct {
		name, lease, owner string
		ttl                time.Duration
	}{
		{"no name", "", "a", time.Second},
		{"no owner", "x", "", time.Second},
		{"zero ttl", "x", "a", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if ok, err := meta.TryLease(context.Background(), db, tc.lease, tc.owner, tc.ttl); err == nil || ok {
				t.Fatalf("TryLease = %v, %v; want an error", ok, err)
			}
		})
	}
}
