package github

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	gh "github.com/google/go-github/v62/github"
)

// HookDelivery is one delivery of a webhook, as GitHub lists them.
type HookDelivery struct {
	ID int64
	// GUID is the X-GitHub-Delivery of the delivery (redeliveries keep it).
	GUID        string
	DeliveredAt time.Time
	Redelivery  bool
	// Status is GitHub's description ("OK", "Invalid HTTP Response: 503"...);
	// StatusCode the HTTP status the receiver answered (0: no answer).
	Status         string
	StatusCode     int
	Event          string
	Action         string
	InstallationID int64
	RepositoryID   int64
}

// Failed tells whether the receiver did not accept the delivery.
func (d HookDelivery) Failed() bool { return d.StatusCode < 200 || d.StatusCode > 299 }

func deliveries(in []*gh.HookDelivery) []HookDelivery {
	out := make([]HookDelivery, 0, len(in))
	for _, d := range in {
		out = append(out, HookDelivery{
			ID: d.GetID(), GUID: d.GetGUID(), DeliveredAt: d.GetDeliveredAt().Time,
			Redelivery: d.GetRedelivery(), Status: d.GetStatus(), StatusCode: d.GetStatusCode(),
			Event: d.GetEvent(), Action: d.GetAction(),
			InstallationID: d.GetInstallationID(), RepositoryID: d.GetRepositoryID(),
		})
	}
	return out
}

// errNotApp refuses the App-only calls of a client authenticated by token.
var errNotApp = errors.New("needs GitHub App authentication")

// ListHookDeliveries returns one page of the App's webhook deliveries,
// newest first, and the cursor of the next page ("" on the last).
// Pass "" for the first page; perPage <= 0 means DefaultPerPage. The call
// has PriorityLow unless ctx says otherwise.
func (c *Client) ListHookDeliveries(ctx context.Context, cursor string, perPage int) ([]HookDelivery, string, error) {
	op := "list app hook deliveries"
	ctx = withDefaultPriority(ctx, PriorityLow)
	if c.apps == nil {
		return nil, "", invalid(op, "%v", errNotApp)
	}
	var (
		out  []*gh.HookDelivery
		next string
	)
	err := c.call(ctx, op, false, func(ctx context.Context) error {
		var resp *gh.Response
		var err error
		out, resp, err = c.apps.Apps.ListHookDeliveries(ctx, cursorOptions(cursor, perPage))
		if err == nil {
			next = resp.Cursor
		}
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return deliveries(out), next, nil
}

// Redeliver asks GitHub to deliver an App webhook delivery again.
func (c *Client) Redeliver(ctx context.Context, deliveryID int64) error {
	op := fmt.Sprintf("redeliver app hook delivery %d", deliveryID)
	if c.apps == nil {
		return invalid(op, "%v", errNotApp)
	}
	return c.call(ctx, op, false, func(ctx context.Context) error {
		_, _, err := c.apps.Apps.RedeliverHookDelivery(ctx, deliveryID)
		return accepted(err)
	})
}

// ListOrgHookDeliveries returns one page of the deliveries of an
// organization webhook and the cursor of the next page ("" on the last).
// (Organization webhook endpoints are not in the project's reference
// description; they are GitHub's standard ones.) The call has PriorityLow
// unless ctx says otherwise.
func (c *Client) ListOrgHookDeliveries(ctx context.Context, org string, hookID int64, cursor string, perPage int) ([]HookDelivery, string, error) {
	op := fmt.Sprintf("list deliveries of hook %d of %s", hookID, org)
	ctx = withDefaultPriority(ctx, PriorityLow)
	if org == "" {
		return nil, "", invalid(op, "empty organization")
	}
	var (
		out  []*gh.HookDelivery
		next string
	)
	err := c.callAs(ctx, op, false, orgAccount(org), func(ctx context.Context, g *gh.Client) error {
		var resp *gh.Response
		var err error
		out, resp, err = g.Organizations.ListHookDeliveries(ctx, url.PathEscape(org), hookID, cursorOptions(cursor, perPage))
		if err == nil {
			next = resp.Cursor
		}
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return deliveries(out), next, nil
}

// RedeliverOrgHook asks GitHub to deliver an organization webhook delivery
// again.
func (c *Client) RedeliverOrgHook(ctx context.Context, org string, hookID, deliveryID int64) error {
	op := fmt.Sprintf("redeliver delivery %d of hook %d of %s", deliveryID, hookID, org)
	if org == "" {
		return invalid(op, "empty organization")
	}
	return c.callAs(ctx, op, false, orgAccount(org), func(ctx context.Context, g *gh.Client) error {
		_, _, err := g.Organizations.RedeliverHookDelivery(ctx, url.PathEscape(org), hookID, deliveryID)
		return accepted(err)
	})
}

func cursorOptions(cursor string, perPage int) *gh.ListCursorOptions {
	if perPage <= 0 {
		perPage = DefaultPerPage
	}
	return &gh.ListCursorOptions{Cursor: cursor, PerPage: perPage}
}

// accepted treats go-github's AcceptedError (a 202, the answer of a
// redelivery) as success.
func accepted(err error) error {
	var ae *gh.AcceptedError
	if errors.As(err, &ae) {
		return nil
	}
	return err
}
