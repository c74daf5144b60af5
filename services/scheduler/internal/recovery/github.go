package recovery

import (
	"context"
	"errors"
	"fmt"
	"strings"

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
// (a token without github.webhook_hooks).
var ErrNoSource = errors.New("recovery: no webhook to recover: use a GitHub App, or list the organization webhooks in github.webhook_hooks")

// HooksFromConfig lists the webhooks of a configuration: the App's own
// webhook when the manager authenticates as a GitHub App, and every
// organization webhook of github.webhook_hooks (and of the pair
// github.webhook_organization / github.webhook_hook_id), each read with the
// token of its organization. It returns ErrNoSource when there is none.
//
// The App's hook, or without an App the pair's, is named "": it keeps the
// checkpoint of a manager of one webhook.
func HooksFromConfig(c *config.Config, client *github.Client) ([]Hook, error) {
	var hooks []Hook
	if c.Secrets.HasApp() {
		hooks = append(hooks, Hook{Source: AppHook(client)})
	}
	for _, h := range c.GitHub.WebhookHooks {
		hooks = append(hooks, Hook{Name: OrgHookName(h.Organization, h.HookID), Source: OrgHook(client, h.Organization, h.HookID)})
	}
	if org, id := c.GitHub.WebhookOrganization, c.GitHub.WebhookHookID; id > 0 && org != "" {
		name := OrgHookName(org, id)
		if !c.Secrets.HasApp() {
			name = ""
		}
		hooks = append(hooks, Hook{Name: name, Source: OrgHook(client, org, id)})
	}
	if len(hooks) == 0 {
		return nil, ErrNoSource
	}
	return hooks, nil
}

// OrgHookName is the name of an organization webhook in its checkpoint's
// key: "org:<organization, lower-case>:<hook id>".
func OrgHookName(org string, hookID int64) string {
	return fmt.Sprintf("org:%s:%d", strings.ToLower(org), hookID)
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
