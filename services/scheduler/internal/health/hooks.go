package health

import (
	"context"

	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/stream"
)

// WrapResults returns a handler of {P}:results that acts on inventory results
// (HandleInventory) and then hands every entry to next (the dispatch
// handler, which only counts inventories). An inventory that fails to be
// handled is returned as the entry's error, so that it is delivered again
// (handling it twice emits nothing twice).
func (c *Checker) WrapResults(next stream.Handler) stream.Handler {
	return func(ctx context.Context, m stream.Message) error {
		if m.Type == stream.TypeResult {
			var res rmv1.ProvisionResult
			if err := m.Unmarshal(&res); err == nil && res.GetInventory() != nil {
				if err := c.HandleInventory(ctx, &res); err != nil {
					return err
				}
			}
		}
		return next(ctx, m)
	}
}

// WrapEvents returns a handler of {P}:events that hands every entry to next
// (the dispatch handler) and then records the owner and repository of the
// event's job on its record (state.SetJobRepository), so that check 6 can
// look the job up at GitHub. Only queued and in_progress events carry what is
// needed: a completed job is not looked up.
func (c *Checker) WrapEvents(next stream.Handler) stream.Handler {
	return func(ctx context.Context, m stream.Message) error {
		if err := next(ctx, m); err != nil {
			return err
		}
		if m.Type != stream.TypeWorkflowJob {
			return nil
		}
		var ev rmv1.WorkflowJobEvent
		if err := m.Unmarshal(&ev); err != nil {
			return nil // next decided what to do with it
		}
		switch ev.GetAction() {
		case "queued", "in_progress":
			_, err := c.store.SetJobRepository(ctx, ev.GetJobId(), ev.GetOwner(), ev.GetRepository())
			return err
		}
		return nil
	}
}
