// Package backoff is the one retry delay of runner-manager: exponential
// from a base, doubling with each attempt, at most a bound, with optional
// jitter. Every retry (stream redeliveries, create and delete retries, the
// dead-letter retries, GitHub calls) computes its delay here.
package backoff

import (
	"math"
	"math/rand/v2"
	"time"
)

// Exponential is Base doubled for every attempt after the first, at most
// Max.
type Exponential struct {
	// Base is the delay before the first retry (attempt 1).
	Base time.Duration
	// Max bounds every delay; 0: no bound.
	Max time.Duration
	// Jitter, from 0 to 1, is the part of each delay drawn at random: a
	// delay d becomes uniform in [d - Jitter*d, d]. 0: none.
	Jitter float64
}

// maxShift bounds the doublings of a delay without Max.
const maxShift = 32

// Delay returns the delay before attempt (1: the first retry; less counts
// as 1): Base<<(attempt-1), at most Max, then jittered.
func (e Exponential) Delay(attempt int) time.Duration {
	return e.jitter(e.bounded(attempt))
}

func (e Exponential) bounded(attempt int) time.Duration {
	d := e.Base
	for i := 1; i < attempt && i <= maxShift; i++ {
		if (e.Max > 0 && d >= e.Max) || d > math.MaxInt64/2 {
			break
		}
		d *= 2
	}
	if e.Max > 0 && d > e.Max {
		d = e.Max
	}
	return d
}

func (e Exponential) jitter(d time.Duration) time.Duration {
	if e.Jitter <= 0 || d <= 0 {
		return d
	}
	j := time.Duration(float64(d) * min(e.Jitter, 1))
	return d - j + rand.N(j+1)
}

// Sequence returns the delays of e one after the other.
func (e Exponential) Sequence() *Sequence { return &Sequence{e: e} }

// Sequence is a running count of attempts: Next returns the next delay,
// Reset starts again from Base (after a success). Not safe for concurrent
// use.
type Sequence struct {
	e       Exponential
	attempt int
}

// Next returns the delay before the next attempt.
func (s *Sequence) Next() time.Duration {
	s.attempt++
	return s.e.Delay(s.attempt)
}

// Attempts is the number of delays returned since the start or the last
// Reset.
func (s *Sequence) Attempts() int { return s.attempt }

// Reset starts the sequence again from Base.
func (s *Sequence) Reset() { s.attempt = 0 }
