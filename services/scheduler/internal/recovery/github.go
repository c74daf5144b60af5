package recovery

import (
	"context"
	"errors"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/github"
)

// AppHook is the Source of a GitHub App's webhook (GET /app/hook/deliveries,
// POST /app/hook/deliveries/{id}/attempts). Every call has PriorityLow.
func AppHook(c *github.Client) Source { return appHook{c} }

type appHook struct{ c *github.Client }

func (a appHook) ListDeliveries(ctx context.Context, cursor string, perPage int) ([]Delivery, string, error) {
	ds, next, err := a.c.ListHookDeliveries(low(ctx), cursor, perPage)
	return fromGitHub(ds), next, err
}

func (a appHook) Redeliver(ctx context.Context, id int64) error {
	return a.c.Redeliver(low(ctx), id)
}

// OrgHook is the Source of an organization webhook
// (GET /orgs/{org}/hooks/{hook_id}/deliveries and its attempts), for a
// manager authenticated by token. Every call has PriorityLow.
func OrgHook(c *github.Client, org string, hookID int64) Source { return orgHook{c, org, hookID} }

type orgHook struct {
	c      *github.Client
	org    string
	hookID int64
}

func (o orgHook) ListDeliveries(ctx context.Context, cursor string, perPage int) ([]Delivery, string, error) {
	ds, next, err := o.c.ListOrgHookDeliveries(low(ctx), o.org, o.hookID, cursor, perPage)
	return fromGitHub(ds), next, err
}

func (o orgHook) Redeliver(ctx context.Context, id int64) error {
	return o.c.RedeliverOrgHook(low(ctx), o.org, o.hookID, id)
}

// ErrNoSource: the configuration gives the recovery no webhook to look at
// (a token without github.webhook_hook_id and github.webhook_organization).
var ErrNoSource = errors.New("recovery: no webhook to recover: use a GitHub App, or set github.webhook_hook_id and github.webhook_organization")

// SourceFromConfig picks the Source of a configuration: the App's webhook
// when the manager authenticates as a GitHub App, else the organization
// webhook github.webhook_hook_id of github.webhook_organization. It returns
// ErrNoSource when there is neither.
func SourceFromConfig(c *config.Config, client *github.Client) (Source, error) {
	switch {
	case c.Secrets.HasApp():
		return AppHook(client), nil
	case c.GitHub.WebhookHookID > 0 && c.GitHub.WebhookOrganization != "":
		return OrgHook(client, c.GitHub.WebhookOrganization, c.GitHub.WebhookHookID), nil
	default:
		return nil, ErrNoSource
	}
}

func low(ctx context.Context) context.Context { return github.WithPriority(ctx, github.PriorityLow) }

func fromGitHub(in []github.HookDelivery) []Delivery {
	out := make([]Delivery, len(in))
	for i, d := range in {
		out[i] = Delivery{
			ID: d.ID, GUID: d.GUID, DeliveredAt: d.DeliveredAt, Redelivery: d.Redelivery,
			StatusCode: d.StatusCode, Event: d.Event, Action: d.Action,
		}
	}
	return out
}
