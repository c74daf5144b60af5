package fakegithub

import (
	"context"
	"errors"
	"time"
)

// Simulation queues jobs at a steady rate, like an organization's CI traffic.
type Simulation struct {
	// Rate in jobs per second.
	Rate float64
	// LabelSets: each job takes one of them, uniformly.
	LabelSets [][]string
	// Owner and Repo of the jobs.
	Owner, Repo string
	// Each job runs for a duration uniformly drawn from [MinDuration, MaxDuration].
	MinDuration, MaxDuration time.Duration
}

// Simulate queues jobs until ctx is cancelled or the server is closed.
func (s *Server) Simulate(ctx context.Context, sim Simulation) error {
	if sim.Rate <= 0 || len(sim.LabelSets) == 0 || sim.Owner == "" || sim.Repo == "" {
		return errors.New("simulate: rate, label sets, owner and repo are required")
	}
	if sim.MaxDuration < sim.MinDuration {
		return errors.New("simulate: max duration below min duration")
	}
	t := time.NewTicker(time.Duration(float64(time.Second) / sim.Rate))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.closeCh:
			return nil
		case <-t.C:
		}
		s.mu.Lock()
		labels := sim.LabelSets[s.rng.IntN(len(sim.LabelSets))]
		d := sim.MinDuration
		if span := sim.MaxDuration - sim.MinDuration; span > 0 {
			d += time.Duration(s.rng.Int64N(int64(span)))
		}
		s.mu.Unlock()
		if _, err := s.QueueJob(JobSpec{Owner: sim.Owner, Repo: sim.Repo, Labels: labels, Duration: d}); err != nil {
			return err
		}
	}
}
